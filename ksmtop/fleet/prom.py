"""A small client of Prometheus's HTTP query API (/api/v1/query, /api/v1/query_range), urllib with timeouts.

Every failure comes back as PrometheusError with one line in words: cannot connect, no answer in time, an HTTP
error with Prometheus's own message (a bad query), an answer that is not the API's JSON. Answers are size
capped. Label values are returned as Prometheus gives them; callers make them safe where they show them.

No UI imports.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from ksmtop.safetext import safe

DEFAULT_TIMEOUT_S = 5.0
MAX_ANSWER_BYTES = 64 * 1024 * 1024
"""Largest answer read (a fleet of 1,000 hosts with 50 guests each answers in a few MiB)."""


class PrometheusError(Exception):
    """A query that did not give an answer; the message says why in words."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One element of an instant vector."""

    labels: dict[str, str]
    value: float
    time: float


@dataclass(frozen=True, slots=True)
class Series:
    """One element of a range vector (a matrix): its points as (unix time, value), oldest first."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


def check_url(url: str) -> str:
    """The base URL without a trailing slash; raises PrometheusError for anything but http(s)://host[:port]/..."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PrometheusError(f"not a Prometheus URL: {safe(url)!r} (e.g. http://prometheus:9090)")
    return url.rstrip("/")


def promql_string(value: str) -> str:
    """A PromQL string literal (Go escaping rules; JSON's escapes are a subset)."""
    return json.dumps(value, ensure_ascii=False)


class PrometheusClient:
    """Instant and range queries against one Prometheus server."""

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.url = check_url(url)
        self.timeout_s = timeout_s

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query; ``at`` is the evaluation time (default: now, as Prometheus sees it)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        if data.get("resultType") == "scalar":
            time, value = data["result"]
            return [Sample({}, float(value), float(time))]
        if data.get("resultType") != "vector":
            raise PrometheusError(f"expected an instant vector for {safe(expr)!r}, got {safe(data.get('resultType'))}")
        try:
            return [
                Sample(dict(item["metric"]), float(item["value"][1]), float(item["value"][0]))
                for item in data["result"]
            ]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise PrometheusError(f"malformed vector from {self.url}: {safe(exc)}") from None

    def query_raw(self, expr: str, at: float | None = None) -> list[Series]:
        """An instant query of a range selector (``metric[5m]``): the raw samples, as scraped."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._matrix(self._get("/api/v1/query", params), expr)

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self._matrix(self._get("/api/v1/query_range", params), expr)

    def _matrix(self, data: dict[str, Any], expr: str) -> list[Series]:
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"expected a range vector for {safe(expr)!r}, got {safe(data.get('resultType'))}")
        try:
            return [
                Series(dict(item["metric"]), tuple((float(t), float(v)) for t, v in item["values"]))
                for item in data["result"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise PrometheusError(f"malformed matrix from {self.url}: {safe(exc)}") from None

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                body = answer.read(MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            raise PrometheusError(f"{self.url}: HTTP {exc.code}: {_api_error(exc)}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            if isinstance(reason, TimeoutError):
                raise PrometheusError(f"{self.url}: no answer within {self.timeout_s:g} s") from None
            text = getattr(reason, "strerror", None) or reason
            raise PrometheusError(f"cannot reach {self.url}: {safe(text)}") from None
        except TimeoutError:
            raise PrometheusError(f"{self.url}: no answer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise PrometheusError(f"cannot reach {self.url}: {safe(exc.strerror or exc)}") from None
        if len(body) > MAX_ANSWER_BYTES:
            raise PrometheusError(f"{self.url}: answer larger than {MAX_ANSWER_BYTES // 2**20} MiB")
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise PrometheusError(f"{self.url}: the answer is not JSON (is this Prometheus?)") from None
        if not isinstance(document, dict) or document.get("status") != "success":
            error = document.get("error") if isinstance(document, dict) else None
            raise PrometheusError(f"{self.url}: {safe(error or 'the answer is not the query API')}")
        data = document.get("data")
        if not isinstance(data, dict):
            raise PrometheusError(f"{self.url}: the answer holds no data")
        return data


def _api_error(exc: urllib.error.HTTPError) -> str:
    try:
        document = json.loads(exc.read(65536))
        return safe(f"{document.get('errorType', '')}: {document.get('error', '')}".strip(": "))
    except (ValueError, OSError, AttributeError):
        return safe(exc.reason)
