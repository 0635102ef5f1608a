"""URL canonicalisation and the stable article id derived from it.

The id is what makes the pipeline idempotent end to end: the same article reached through two
feeds, with tracking parameters or a fragment, gets one id, one Kafka key and one
Elasticsearch ``_id``.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

_TRACKING_PARAMS = re.compile(
    r"^(utm_[a-z_]+|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|igshid|yclid|_ga|_gl|"
    r"ref_src|cmpid|wt_mc|wt_zmc|xtor|ito|icid|ns_mchannel|ns_source|ns_campaign|ns_linkname|"
    r"at_medium|at_campaign|at_custom\d*|smid|sara_ecid|mbid)$",
    re.IGNORECASE,
)
_AMP_PATH = re.compile(r"(/amp/?$|/amp(?=/)|\.amp(?=\.html?$|$))")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonicalize_url(url: str) -> str:
    """Lower-case scheme and host, drop default port, fragment, tracking parameters and AMP markers."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    port = parts.port
    netloc = host if port is None or _DEFAULT_PORTS.get(scheme) == port else f"{host}:{port}"
    path = _AMP_PATH.sub("", parts.path) or "/"
    query_pairs = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING_PARAMS.match(k) and k.lower() not in {"amp", "outputtype"}
    ]
    query = urlencode(sorted(query_pairs))
    return urlunsplit((scheme, netloc, path, query, ""))


def article_id(canonical_url: str) -> str:
    """A stable, URL-safe id: the first 128 bits of SHA-256 over the canonical URL, scheme-blind.

    http and https versions of one article are the same article.
    """
    without_scheme = canonical_url.split("://", 1)[-1]
    return hashlib.sha256(without_scheme.encode("utf-8")).hexdigest()[:32]


def source_domain(url: str) -> str:
    host = (urlsplit(url).hostname or "").lower()
    return host[4:] if host.startswith("www.") else host
