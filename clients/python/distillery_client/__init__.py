"""A client for a Distillery server's REST API (/api/v1): `Distillery` for scripts and notebooks,
`distillery` (cli.py) for the shell. Only httpx; no Django or torch."""
from distillery_client.client import Distillery, DistilleryError, JobFailed

__all__ = ["Distillery", "DistilleryError", "JobFailed"]
__version__ = "0.1.0"
