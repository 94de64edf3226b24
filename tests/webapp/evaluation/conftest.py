"""Fixtures of the evaluation web tests."""
import pytest


