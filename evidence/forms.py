"""The evidence pages' forms, and the upload handler both upload paths (the admin form and the
platform's API) use so an upload is never held in memory or written in plaintext, and stops at
the size limit."""

from django import forms
from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler

from . import vault
from .models import EvidenceKind


class UploadTooLarge(Exception):
    """The upload is larger than BAKKME_EVIDENCE_MAX_BYTES."""


def too_large_message() -> str:
    return f"The file is larger than the limit of {settings.BAKKME_EVIDENCE_MAX_BYTES:,} bytes."


class EvidenceUploadHandler(FileUploadHandler):
    """Every file of the request hashed and encrypted as it arrives (evidence.vault.Sealer):
    no plaintext in memory or on disk, whatever its size. Refused with UploadTooLarge as soon as
    the request's files together pass BAKKME_EVIDENCE_MAX_BYTES.

    A request whose declared length is beyond the limit plus BAKKME_EVIDENCE_UPLOAD_ENVELOPE_BYTES
    (the multipart envelope and the form's other fields) is refused before anything is read.
    Install it (use_evidence_upload_handler) before anything reads the request's body.
    """

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0
        self.sealer = None

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        allowed = (
            settings.BAKKME_EVIDENCE_MAX_BYTES + settings.BAKKME_EVIDENCE_UPLOAD_ENVELOPE_BYTES
        )
        if content_length and content_length > allowed:
            raise UploadTooLarge(too_large_message())

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.sealer = vault.Sealer(
            limit=settings.BAKKME_EVIDENCE_MAX_BYTES,
            analyse_limit=settings.BAKKME_EVIDENCE_ANALYSE_MAX_BYTES,
        )

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.BAKKME_EVIDENCE_MAX_BYTES:
            self.sealer.discard()  # the partial ciphertext goes at once
            raise UploadTooLarge(too_large_message())
        self.sealer.write(raw_data)
        return None  # consumed: no other handler sees it

    def file_complete(self, file_size):
        return vault.SealedUpload(self.sealer.finish(), self.file_name, self.content_type)

    def upload_interrupted(self):
        if self.sealer is not None:
            self.sealer.discard()


def use_evidence_upload_handler(request) -> None:
    """Replace the request's upload handlers (before its body is read)."""
    request.upload_handlers = [EvidenceUploadHandler(request)]


class EvidenceUploadForm(forms.Form):
    """Staff add a file to a case's evidence."""

    kind = forms.ChoiceField(choices=EvidenceKind.choices, initial=EvidenceKind.MEDIA)
    file = forms.FileField(allow_empty_file=False)


class PreviewSettingsForm(forms.Form):
    """A reviewer's own preview settings: blur 0..BAKKME_PREVIEW_MAX_BLUR_RADIUS, greyscale."""

    greyscale = forms.BooleanField(required=False, help_text="Show previews without colour.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["blur_radius"] = forms.IntegerField(
            min_value=0,
            max_value=settings.BAKKME_PREVIEW_MAX_BLUR_RADIUS,
            help_text="0 shows previews sharp; higher blurs more.",
        )
        self.order_fields(["blur_radius", "greyscale"])
