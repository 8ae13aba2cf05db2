"""Text and link signals (README "Detection"): the lexicon and the blocked links, at intake.

The enabled lexicon terms are compiled once per process and kept in this module; at most every
BAKKME_LEXICON_REFRESH_SECONDS the process asks the database for the lexicon's cheap "version"
(count and last change) and recompiles when it changed, as reports/matching.py does for the PDQ
index. Blocked links are looked up in one query per batch: every link found in the batch's texts
is normalised, and the query asks for those URLs and for every domain they are on (a domain entry
matches its subdomains too). So a batch of reports costs a fixed number of queries, whatever its
size.

Lexicon patterns are written by people and run on texts written by anyone, so they run under
the `regex` module's timeout (BAKKME_LEXICON_TIMEOUT_SECONDS per pattern and text): a pattern
that backtracks catastrophically stops there, keeps the spans found before, and is counted on
its term (shown in the admin) instead of holding up intake.
"""

import json
import logging
import re
import threading
import time
from urllib.parse import quote, unquote, urlsplit

import regex
from django.conf import settings
from django.db.models import Count, F, Max, Q
from django.utils import timezone

from .models import BlockedLink, Detection, DetectionMethod, LexiconTerm

logger = logging.getLogger(__name__)

# --- Normalising links ------------------------------------------------------------------------

_DEFAULT_PORTS = {80, 443}
# Characters left as they are in a path or query; everything else is percent-encoded (upper-case
# hex), after decoding, so %7e, %7E and ~ all become ~, and a space becomes %20.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = "/:@!$&'()*+,;=-._~?"


def _split(value: str):
    value = (value or "").strip()
    if not value:
        raise ValueError("Give a URL or a domain.")
    if "://" not in value:
        value = "//" + value.lstrip("/")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"Not a URL: {exc}.") from None
    host = (parts.hostname or "").rstrip(".")
    if not host or " " in host:
        raise ValueError("The URL has no host name.")
    if host.startswith("www."):
        host = host[4:]
    return host, port, parts


def normalise_url(value: str) -> str:
    """The form URLs are compared in: lower-case host without "www.", no scheme, no default port
    (:80, :443), no user, no fragment, the path's and query's percent-encoding made uniform, no
    trailing slash. ValueError when there is no host."""
    host, port, parts = _split(value)
    if port and port not in _DEFAULT_PORTS:
        host = f"{host}:{port}"
    path = quote(unquote(parts.path), safe=_PATH_SAFE).rstrip("/")
    query = quote(unquote(parts.query), safe=_QUERY_SAFE)
    return host + path + (f"?{query}" if query else "")


def normalise_domain(value: str) -> str:
    """A domain entry: the lower-case host without "www." (a URL given keeps only its host)."""
    host, _, _ = _split(value)
    return host


def parent_domains(host: str) -> list[str]:
    """example.com for a.b.example.com, with every level between: the domains whose entries
    match this host."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(len(labels) - 1)] or [host]


_LINK = re.compile(
    r"\bhttps?://[^\s<>\"'\]\[]+"
    r"|\b(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,24}(?::\d{1,5})?(?:/[^\s<>\"'\]\[]*)?",
    re.IGNORECASE,
)
_TRAILING = ".,;:!?)'\""


def extract_links(text: str) -> list[str]:
    """The links in a text, normalised, once each, in order: http(s) URLs and bare domains."""
    found = []
    for match in _LINK.finditer(text or ""):
        raw = match.group(0).rstrip(_TRAILING)
        try:
            url = normalise_url(raw)
        except ValueError:
            continue
        if url not in found:
            found.append(url)
    return found


def blocked_links(urls) -> dict[str, BlockedLink]:
    """{normalised url: the enabled entry it hits} for the URLs that are blocked; one query."""
    urls = list(dict.fromkeys(urls))
    if not urls:
        return {}
    wanted_urls, wanted_domains = set(), set()
    for url in urls:
        wanted_urls.update({url, url.split("?", 1)[0]})
        host = url.split("/", 1)[0].split("?", 1)[0].rsplit(":", 1)[0]
        wanted_domains.update(parent_domains(host))
    entries = BlockedLink.objects.filter(
        Q(kind=BlockedLink.Kind.URL, value__in=wanted_urls)
        | Q(kind=BlockedLink.Kind.DOMAIN, value__in=wanted_domains),
        enabled=True,
    )
    by_url = {e.value: e for e in entries if e.kind == BlockedLink.Kind.URL}
    by_domain = {e.value: e for e in entries if e.kind == BlockedLink.Kind.DOMAIN}
    hits = {}
    for url in urls:
        entry = by_url.get(url) or by_url.get(url.split("?", 1)[0])
        if entry is None:
            host = url.split("/", 1)[0].split("?", 1)[0].rsplit(":", 1)[0]
            entry = next((by_domain[d] for d in parent_domains(host) if d in by_domain), None)
        if entry is not None:
            hits[url] = entry
    return hits


# --- The lexicon ------------------------------------------------------------------------------


def compile_pattern(pattern: str) -> regex.Pattern:
    """The term's compiled expression (case-insensitive; Python's `re` syntax), or ValueError
    saying what is wrong."""
    try:
        compiled = regex.compile(pattern or "", regex.IGNORECASE | regex.VERSION0)
    except regex.error as exc:
        raise ValueError(f"Not a valid regular expression: {exc}.") from None
    if compiled.search("") is not None:
        raise ValueError("The pattern matches empty text: it would flag every report.")
    return compiled


_cache: dict = {"terms": None, "version": None, "checked_at": float("-inf")}
_lock = threading.Lock()


def lexicon_version() -> tuple:
    got = LexiconTerm.objects.aggregate(count=Count("id"), last=Max("updated_at"))
    return (got["count"], got["last"])


def lexicon() -> list[tuple[LexiconTerm, regex.Pattern]]:
    """This process's compiled enabled terms, recompiled when the lexicon changed (checked at
    most every BAKKME_LEXICON_REFRESH_SECONDS). A stored term that no longer compiles is
    skipped (the admin refuses them)."""
    now = time.monotonic()
    if (
        _cache["terms"] is not None
        and now - _cache["checked_at"] < settings.BAKKME_LEXICON_REFRESH_SECONDS
    ):
        return _cache["terms"]
    with _lock:
        version = lexicon_version()
        if _cache["terms"] is None or version != _cache["version"]:
            terms = []
            for term in LexiconTerm.objects.filter(enabled=True).order_by("pk"):
                try:
                    terms.append((term, compile_pattern(term.pattern)))
                except ValueError:
                    continue
            _cache["terms"] = terms
            _cache["version"] = version
        _cache["checked_at"] = time.monotonic()
        return _cache["terms"]


def reset_lexicon() -> None:
    """Forget this process's compiled lexicon (tests; the next scan recompiles it)."""
    with _lock:
        _cache.update(terms=None, version=None, checked_at=float("-inf"))


def lexicon_spans(texts: dict[str, str], terms=None) -> list[dict]:
    """Every lexicon hit in the texts ({field: text}), each {"field", "span": [start, end,
    text], "term", "category", "weight"}. Texts are read up to BAKKME_SIGNAL_MAX_TEXT_CHARS; a
    pattern that runs out of time on a text keeps the spans it found (_count_timeouts)."""
    limit = settings.BAKKME_SIGNAL_MAX_TEXT_CHARS
    timeout = settings.BAKKME_LEXICON_TIMEOUT_SECONDS
    spans, timed_out = [], set()
    terms = lexicon() if terms is None else terms
    for field, text in texts.items():
        text = (text or "")[:limit]
        if not text:
            continue
        for term, compiled in terms:
            try:
                for match in compiled.finditer(text, timeout=timeout):
                    if match.end() == match.start():
                        continue
                    spans.append(
                        {
                            "field": field,
                            "span": [match.start(), match.end(), match.group(0)],
                            "term": term.pk,
                            "category": term.category,
                            "weight": term.weight,
                        }
                    )
            except TimeoutError:
                timed_out.add(term.pk)
    if timed_out:
        _count_timeouts(timed_out)
    return spans


def _count_timeouts(term_ids: set[int]) -> None:
    """Count a timeout on each term (the admin shows them, so the pattern gets rewritten)."""
    logger.warning(
        "Lexicon terms %s ran out of time (%s s) on a text; rewrite their patterns.",
        sorted(term_ids),
        settings.BAKKME_LEXICON_TIMEOUT_SECONDS,
    )
    # update() leaves updated_at alone: counting is not an edit, the compiled lexicon stays.
    LexiconTerm.objects.filter(pk__in=term_ids).update(
        timeouts=F("timeouts") + 1, last_timeout_at=timezone.now()
    )


# --- Detections -------------------------------------------------------------------------------


def _keyword_detection(spans: list[dict], **where) -> Detection:
    weights = {s["term"]: s["weight"] for s in spans}
    return Detection(
        method=DetectionMethod.KEYWORD,
        matched={"spans": spans, "score": sum(weights.values())},
        **where,
    )


def _link_detection(url: str, field: str, entry: BlockedLink, **where) -> Detection:
    return Detection(
        method=DetectionMethod.LINK,
        matched={
            "url": url,
            "field": field,
            "blocked": entry.pk,
            "kind": entry.kind,
            "blocked_value": entry.value,
        },
        **where,
    )


def scan_texts(texts: dict[str, str], **where) -> list[Detection]:
    """Unsaved detections for one set of texts (a report's, a message log's); `where` gives the
    case and the report or item. Costs the blocked-link query; prefer scan_reports for many."""
    return _scan([(texts, {}, where)])


def _scan(batch: list[tuple[dict, dict, dict]]) -> list[Detection]:
    """batch: (texts for the lexicon and links, more texts for links only, where) each."""
    limit = settings.BAKKME_SIGNAL_MAX_TEXT_CHARS
    detections, links = [], []
    terms = lexicon()  # once per batch
    for texts, link_only, where in batch:
        spans = lexicon_spans(texts, terms)
        if spans:
            detections.append(_keyword_detection(spans, **where))
        seen = set()
        for field, text in {**texts, **link_only}.items():
            for url in extract_links((text or "")[:limit]):
                if url not in seen:
                    seen.add(url)
                    links.append((url, field, where))
    hits = blocked_links(url for url, _, _ in links)
    for url, field, where in links:
        if url in hits:
            detections.append(_link_detection(url, field, hits[url], **where))
    return detections


def scan_reports(reports) -> list[Detection]:
    """Apply the lexicon and the blocked links to newly stored reports (they have their case)
    and store the detections: a fixed number of queries per batch."""
    batch = [
        (
            {"content_text": r.content_text, "description": r.description},
            {"content_url": r.content_url},
            {"case_id": r.case_id, "report": r},
        )
        for r in reports
    ]
    detections = _scan(batch)
    return Detection.objects.bulk_create(detections) if detections else []


def scan_message_log(item, plaintext: bytes) -> list[Detection]:
    """Apply the lexicon and the blocked links to a communication log collected as evidence:
    JSON, a list of messages (objects with a "text", or strings). Anything else is not a log
    this can read, and is left alone (it is preserved all the same)."""
    try:
        messages = json.loads(plaintext)
    except (ValueError, UnicodeDecodeError):
        return []
    if not isinstance(messages, list):
        return []
    texts = {}
    for index, message in enumerate(messages):
        text = message.get("text") if isinstance(message, dict) else message
        if isinstance(text, str) and text:
            texts[f"message[{index}]"] = text
    if not texts:
        return []
    detections = scan_texts(texts, case_id=item.case_id, item=item)
    return Detection.objects.bulk_create(detections) if detections else []
