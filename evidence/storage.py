"""Where the encrypted bytes live: Django's storage API, storage alias "evidence".

The default is a private folder (BAKKME_EVIDENCE_ROOT: never under MEDIA_ROOT, never served);
S3-compatible object storage through django-storages when BAKKME_EVIDENCE_S3_BUCKET is set (see
settings). Nothing but ciphertext is ever written here, besides the ledgers' signed checkpoints
(`checkpoints/`: event ids, counts and MACs, no evidence; evidence/checkpoints.py).
"""

import uuid

from django.core.files.storage import storages


def evidence_storage():
    return storages["evidence"]


def new_name(folder: str) -> str:
    """A name that says nothing about the content."""
    return f"{folder}/{uuid.uuid4().hex[:2]}/{uuid.uuid4().hex}.bkev"
