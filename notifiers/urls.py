"""Which webhook URLs the service may POST to.

A webhook URL is configuration, but it is also a way to make this process send requests to any
address it can reach (SSRF): metadata services, the database, admin ports on loopback. So unless
an operator opts in, a URL must be https and must not name a loopback, private, link-local or
otherwise non-public address. `check_webhook_url` judges the URL text (IP literals included);
`forbidden_reason` is also used at connect time on whatever a host name resolves to, since a
public-looking name can resolve to 127.0.0.1.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}
# A final label that looks numeric makes socket APIs read the host as an IPv4 address in one of
# the legacy forms (2130706433, 0x7f.1, 127.1); only the canonical dotted quad is judged reliably.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, when it is one of the translation forms."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def forbidden_reason(ip: IPAddress) -> str | None:
    """Why `ip` is not a public unicast address (``"loopback"``, ``"private"``, ...), or None."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            why = forbidden_reason(inner)
            return f"{why} (IPv4 embedded in IPv6)" if why else None
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        # e.g. 100.64.0.0/10 (carrier-grade NAT): not private by the stdlib's table, still not the internet.
        return "not globally routable"
    return None


def is_localhost_name(host: str) -> bool:
    """`localhost` and its subdomains resolve to loopback by convention (RFC 6761)."""
    host = host.rstrip(".").lower()
    return host == "localhost" or host.endswith(".localhost")


def check_webhook_url(url: str, *, allow_http: bool, allow_private: bool) -> str:
    """The normalised form of `url` when the policy accepts it; ValueError naming the reason if not.

    Normalised: scheme and host lower-cased (IDNA for non-ASCII names), default port dropped, an
    empty path written as ``/``, any fragment dropped (it is never sent anyway).
    """
    if not isinstance(url, str) or not url:
        raise ValueError("empty URL")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"malformed URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"scheme must be https, not {scheme or 'missing'!r}")
    if scheme == "http" and not allow_http:
        raise ValueError("scheme must be https (http:// needs webhook.allow_http)")
    if "@" in parts.netloc:
        raise ValueError("credentials in the URL (user:pass@) are not allowed; use the signing secret")
    host = parts.hostname
    if not host:
        raise ValueError("URL has no host")

    ip: IPAddress | None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None:
        why = forbidden_reason(ip)
        if why and not allow_private:
            raise ValueError(f"address {ip} is {why} (needs webhook.allow_private)")
        host_text = f"[{ip.compressed}]" if ip.version == 6 else str(ip)
    else:
        bare = host.rstrip(".")
        if not bare or ".." in bare:
            raise ValueError(f"invalid host name {host!r}")
        if _NUMERIC_LABEL.match(bare.rsplit(".", 1)[-1]):
            raise ValueError(f"host {host!r} is not a canonical IP address or a DNS name")
        if is_localhost_name(bare) and not allow_private:
            raise ValueError(f"host {host!r} is loopback (needs webhook.allow_private)")
        try:
            host_text = bare.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ValueError(f"invalid host name {host!r} ({exc})") from None

    netloc = host_text if port is None or port == _DEFAULT_PORTS[scheme] else f"{host_text}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def normalise_url(url: str) -> str:
    """The form `check_webhook_url` returns, with no policy applied (for matching URLs to secrets)."""
    try:
        return check_webhook_url(url, allow_http=True, allow_private=True)
    except ValueError:
        return url
