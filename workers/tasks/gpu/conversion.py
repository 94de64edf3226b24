"""GGUF conversion on the gpu queue: claim the job, dequantize the file into its target directory
with ml.gguf (progress reported per step), hash the new weights once (ml.modeling.weights_hash) and
register the model version through webapp.catalog.gguf. An unsupported architecture or quantization
fails the job with ml.gguf's message, which says what would work."""
import os
import socket

from celery import shared_task

from ml.gguf import UnsupportedGGUF, convert_gguf
from ml.modeling import weights_hash
from webapp.catalog import gguf as services
from webapp.catalog.models import GGUFConversion
from webapp.lifecycle import JobBeat


@shared_task(name="workers.tasks.gpu.conversion.convert_gguf_model")
def convert_gguf_model(conversion_id: int) -> str:
    attempt = services.gguf_conversion_claim(conversion_id=conversion_id, worker=f"{socket.gethostname()}:{os.getpid()}")
    if attempt is None:
        return "not claimed"
    conversion = GGUFConversion.objects.get(pk=conversion_id)
    try:
        with JobBeat(GGUFConversion, pk=conversion_id, attempt=attempt):
            convert_gguf(conversion.gguf_path, conversion.target_dir, on_progress=lambda fraction, message:
                         services.gguf_conversion_progress(conversion_id=conversion_id, attempt=attempt,
                                                           fraction=fraction, message=message))
            digest = weights_hash(conversion.target_dir)
    except UnsupportedGGUF as exc:
        services.gguf_conversion_fail(conversion_id=conversion_id, attempt=attempt, error=str(exc))
        return "unsupported"
    except Exception as exc:  # the catalog page shows why instead of a job stuck in "running"
        services.gguf_conversion_fail(conversion_id=conversion_id, attempt=attempt, error=f"{type(exc).__name__}: {exc}")
        raise
    version = services.gguf_conversion_succeed(conversion_id=conversion_id, attempt=attempt, weights_digest=digest)
    return "succeeded" if version else "claim lost"
