"""The evidence pages of the back office: a case's evidence (list and upload), one item with its
custody, blurred previews, one item unblurred, downloads, and a reviewer's preview settings.

Mounted in the admin by EvidenceItemAdmin.get_urls (admin_site.admin_view: staff login).
Thin: who may reach an item is evidence.access (404 for everyone else, so existence is not
disclosed); what is handed out, and its custody event, is evidence.viewing.
"""

import mimetypes

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import (
    HttpResponse,
    HttpResponseGone,
    HttpResponseNotAllowed,
    StreamingHttpResponse,
)
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.templatetags.static import static
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from . import vault, viewing
from .access import case_or_404, item_or_404
from .forms import (
    EvidenceUploadForm,
    PreviewSettingsForm,
    UploadTooLarge,
    use_evidence_upload_handler,
)
from .models import EvidenceItem
from .queries import organisation_preview_options, preview_options

# What a list shows instead of a preview (evidence/static/evidence/icons/).
ICONS = {
    "video": "evidence/icons/video.svg",
    "audio": "evidence/icons/audio.svg",
    "problem": "evidence/icons/problem.svg",
    "purged": "evidence/icons/purged.svg",
    "file": "evidence/icons/file.svg",
}
NO_STORE = "no-store, private"


def _require(user, perm: str) -> None:
    if not user.has_perm(perm):
        raise PermissionDenied("You do not have the permission for this.")


def _context(request, title: str, **extra) -> dict:
    return {**admin.site.each_context(request), "title": title, **extra}


def _row(item: EvidenceItem) -> dict:
    display = viewing.display_of(item)
    return {"item": item, "display": display, "icon": ICONS.get(display, "")}


def _integrity_refused(request, item_id: int, exc: Exception) -> TemplateResponse:
    return TemplateResponse(
        request,
        "admin/evidence/evidenceitem/integrity_error.html",
        _context(request, f"Evidence #{item_id} failed its integrity check", message=str(exc)),
        status=409,
    )


def _no_store(response):
    response["Cache-Control"] = NO_STORE
    return response


# --- A case's evidence ---------------------------------------------------------------------------


def case_evidence(request, case_id: int, upload_form=None, upload_error="", status: int = 200):
    """The case's items: facts, a blurred preview or an icon, links; the upload form."""
    case = case_or_404(request.user, case_id)
    items = case.evidence.select_related("collected_by", "collected_via").order_by(
        "collected_at", "pk"
    )
    user = request.user
    can_upload = user.has_perm("evidence.add_evidenceitem")
    context = _context(
        request,
        f"Evidence of case #{case.pk}",
        case=case,
        rows=[_row(item) for item in items],
        can_preview=user.has_perm("evidence.preview_evidenceitem"),
        can_download=user.has_perm("evidence.download_evidenceitem"),
        can_upload=can_upload,
        upload_form=upload_form or (EvidenceUploadForm() if can_upload else None),
        upload_error=upload_error,
        preview=preview_options(user),
    )
    return TemplateResponse(
        request, "admin/evidence/evidenceitem/case_evidence.html", context, status=status
    )


@csrf_exempt  # the CSRF check runs in _upload, once the upload handler is in place
def upload(request, case_id: int):
    """Staff add a file to the case's evidence (streamed to disk, then into the vault)."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    case_or_404(request.user, case_id)  # before anything of the body is read
    _require(request.user, "evidence.add_evidenceitem")
    use_evidence_upload_handler(request)
    try:
        request.POST  # noqa: B018  parse the body now, under the size limit
    except UploadTooLarge as exc:
        return case_evidence(request, case_id, upload_error=str(exc), status=413)
    return _upload(request, case_id)


@csrf_protect
def _upload(request, case_id: int):
    case = case_or_404(request.user, case_id)
    form = EvidenceUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return case_evidence(request, case_id, upload_form=form, status=400)
    try:
        item = viewing.collect_upload(
            form.cleaned_data["file"], case=case, kind=form.cleaned_data["kind"], actor=request.user
        )
    except vault.EvidenceTooLarge as exc:
        return case_evidence(request, case_id, upload_error=str(exc), status=413)
    note = f" Flagged: {item.get_problem_display()}." if item.problem else ""
    messages.success(request, f"Evidence #{item.pk} preserved (SHA-256 {item.sha256}).{note}")
    return redirect("admin:evidence_evidenceitem_case", case_id=case.pk)


# --- One item ------------------------------------------------------------------------------------


def item_detail(request, item_id: int):
    """One item's facts, its preview or icon, and its chain of custody (no custody event: no
    bytes are read here)."""
    item = item_or_404(request.user, item_id)
    user = request.user
    show_custody = user.has_perm("evidence.view_custodyevent")
    context = _context(
        request,
        f"Evidence #{item.pk}",
        case=item.case,
        row=_row(item),
        can_preview=user.has_perm("evidence.preview_evidenceitem"),
        can_download=user.has_perm("evidence.download_evidenceitem"),
        show_custody=show_custody,
        events=item.custody.select_related("actor").order_by("at", "pk") if show_custody else [],
    )
    return TemplateResponse(request, "admin/evidence/evidenceitem/item.html", context)


def _picture_response(request, item_id: int, render) -> HttpResponse:
    item = item_or_404(request.user, item_id)
    _require(request.user, "evidence.preview_evidenceitem")
    try:
        png = render(item, request.user)
    except viewing.NoPreview:
        return redirect(static(ICONS.get(viewing.display_of(item), ICONS["problem"])))
    except vault.EvidenceIntegrityError as exc:
        return _integrity_refused(request, item.pk, exc)
    response = HttpResponse(png, content_type="image/png")
    response["Content-Disposition"] = content_disposition_header(False, f"preview-{item.pk}.png")
    return _no_store(response)


def preview_image(request, item_id: int):
    """The blurred preview (PNG). Custody PREVIEW."""
    return _picture_response(request, item_id, viewing.preview)


def unblurred_image(request, item_id: int):
    """The item unblurred, still downscaled (PNG). Custody VIEW."""
    return _picture_response(request, item_id, viewing.unblurred)


def unblur(request, item_id: int):
    """A page showing one item unblurred; the picture itself is unblurred_image."""
    item = item_or_404(request.user, item_id)
    _require(request.user, "evidence.preview_evidenceitem")
    context = _context(request, f"Evidence #{item.pk}, unblurred", case=item.case, row=_row(item))
    return TemplateResponse(request, "admin/evidence/evidenceitem/unblur.html", context)


def download(request, item_id: int):
    """The original bytes as an attachment, after the integrity check. Custody DOWNLOAD."""
    item = item_or_404(request.user, item_id)
    _require(request.user, "evidence.download_evidenceitem")
    if item.purged:
        return HttpResponseGone("The item was destroyed by retention; its custody record remains.")
    try:
        chunks = viewing.download(item, request.user)
    except vault.EvidenceIntegrityError as exc:
        return _integrity_refused(request, item.pk, exc)
    response = StreamingHttpResponse(chunks, content_type="application/octet-stream")
    response["Content-Length"] = str(item.size)
    response["Content-Disposition"] = content_disposition_header(True, download_name(item))
    return _no_store(response)


def download_name(item: EvidenceItem) -> str:
    """A safe file name made of what we know (number, hash, detected type), never the name
    the sender gave."""
    extension = mimetypes.guess_extension(item.media_type) or ".bin"
    return f"evidence-{item.pk}-{item.sha256[:12]}{extension}"


# --- Preview settings ----------------------------------------------------------------------------


def preview_settings(request):
    """The reviewer's own blur strength and greyscale; "reset" returns to the defaults."""
    user = request.user
    _require(user, "evidence.preview_evidenceitem")
    current = preview_options(user)
    if request.method == "POST":
        if "reset" in request.POST:
            viewing.reset_preview_settings(user)
            messages.success(request, "Previews use the organisation's defaults again.")
            return redirect("admin:evidence_preview_settings")
        form = PreviewSettingsForm(request.POST)
        if form.is_valid():
            viewing.save_preview_settings(user, **form.cleaned_data)
            messages.success(request, "Your preview settings are saved.")
            return redirect("admin:evidence_preview_settings")
    else:
        form = PreviewSettingsForm(
            initial={"blur_radius": current.blur_radius, "greyscale": current.greyscale}
        )
    context = _context(
        request,
        "Your preview settings",
        form=form,
        current=current,
        defaults=organisation_preview_options(),
    )
    return TemplateResponse(request, "admin/evidence/evidenceitem/preview_settings.html", context)
