"""A client of ODK Central's API (/work/shared/odk-central-api.md): sessions, projects, forms, OData.

On the transport every server client shares (sync.http: one origin, bounded answers and retries). Central's
own rules it follows:
- a web user logs in (`POST /v1/sessions`) and sends `Authorization: Bearer <token>`; a session lasts 24 h,
  so a 401 logs in again once (with email and password; a token given directly cannot be renewed). Cookies
  Central sets are never kept or replayed (cookie auth over http is refused with 401.3, §1.1).
- OData has no default page size: every page is asked with `$top`. Its `@odata.nextLink` is built on
  Central's configured domain, which may differ from the address we call: only its path and query are
  kept, re-based on the configured server, and the path must stay under the form's OData service (§5.1).
- a weak `ETag` with `If-None-Match` makes a no-change question one 304 (§5.9).

pyodk (ODK's own client) is not used: its session is a plain requests session with its own retries and
no bound on an answer's size, and it pages OData into memory; here every request goes through the same
origin, size and retry rules as KoBo's.
"""

from __future__ import annotations

import http.cookiejar
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from common.errors import ConfigError, KoboRefused, KoboUnavailable
from common.text import storable
from sync.http import Parsed, ServerClient, detail_of, path_of

XML_FORM_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}\Z")


def check_xml_form_id(value: Any) -> str:
    """An xmlFormId that can go into a URL and a path (Central's are XML names)."""
    if not isinstance(value, str) or not XML_FORM_ID.match(value) or value.lower().endswith((".xml", ".xls",
                                                                                              ".xlsx")):
        raise ConfigError(f"'{storable(str(value))[:60]}' is not an ODK Central form id (its xmlFormId, like "
                          "vot_screening)")
    return value


class _NoCookies(http.cookiejar.CookiePolicy):
    """Central sets session cookies; over plain http, replaying them makes it refuse the request (401.3)."""

    netscape = True
    rfc2965 = hide_cookie2 = False

    def set_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def return_ok(self, cookie: http.cookiejar.Cookie, request: Any) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: Any) -> bool:
        return False

    def path_return_ok(self, path: str, request: Any) -> bool:
        return False


@dataclass(frozen=True, slots=True)
class ODataPage:
    """One page of an OData table: its rows, the next page's path and query (re-based on our server), the count
    when asked, the ETag, and whether the server answered 304 (not modified since the ETag we sent)."""

    rows: list[Any]
    next: str | None
    count: int | None
    etag: str | None
    not_modified: bool = False
    dirty: bool = False


class CentralClient(ServerClient):
    """One ODK Central server and one web user (email and password, or a session token)."""

    label = "Central"

    def __init__(self, server_url: str, *, email: str | None = None, password: str | None = None,
                 token: str | None = None, **options: Any):
        super().__init__(server_url, **options)
        if not token and not (email and password):
            raise ConfigError("ODK Central needs a web user's email and password (or a session token)")
        self._email, self._password = email, password
        self._token = token
        self._session.cookies.set_policy(_NoCookies())

    def _auth_headers(self) -> dict[str, str]:
        if self._token is None:
            self._login()
        return {"Authorization": f"Bearer {self._token}"}

    def _reauthenticate(self) -> bool:
        """A session lasts 24 h: log in again (once per refused request) when we know how."""
        if not (self._email and self._password):
            return False
        self._token = None
        return True

    def _login(self) -> None:
        resp = self._session.request("POST", f"{self.server_url}/v1/sessions",
                                     json={"email": self._email, "password": self._password},
                                     timeout=self.timeout, allow_redirects=False, stream=True)
        self._read_bounded(resp, f"{self.server_url}/v1/sessions")
        self.requests_made += 1
        if resp.status_code != 200:
            raise self._refusal("POST", f"{self.server_url}/v1/sessions", resp)
        try:
            token = resp.json().get("token")
        except ValueError:
            token = None
        if not isinstance(token, str) or not re.fullmatch(r"[A-Za-z0-9!$]{64}", token):
            raise KoboUnavailable(f"{self.server_url} answered the login without a session token: is it ODK Central?")
        self._token = token

    def _refusal(self, method: str, url: str, resp: requests.Response) -> KoboRefused:
        status = resp.status_code
        detail = detail_of(resp)
        if status == 401:
            msg = f"Central answered 401: {self.token_source} was refused by {self.server_url} ({detail})"
        elif status == 403:
            msg = (f"Central answered 403 for {path_of(url)}: the user behind {self.token_source} may not do this "
                   f"(an app user cannot read submissions; give a web user with a project role) ({detail})")
        elif status == 404:
            msg = f"Central answered 404 for {path_of(url)}: no such project, form or submission ({detail})"
        else:
            msg = f"Central answered {status} to {method} {path_of(url)}: {detail}"
        return KoboRefused(msg, status=status)

    # -- projects and forms ------------------------------------------------------------------------------

    def forms(self, project: int) -> list[dict[str, Any]]:
        body = self.get_json(f"/v1/projects/{int(project)}/forms", check=_is_list("a list of forms"))
        return [f for f in body if isinstance(f, dict)]

    def form(self, project: int, xml_form_id: str, *, extended: bool = False) -> dict[str, Any]:
        headers = {"X-Extended-Metadata": "true"} if extended else None
        return self.get_json(f"{self._form_path(project, xml_form_id)}", check=_is_dict("a form"), headers=headers)

    def form_xml(self, project: int, xml_form_id: str, version: str | None = None) -> str:
        path = self._form_path(project, xml_form_id)
        if version is not None:
            path += f"/versions/{quote(version, safe='')}"
        resp = self.request("GET", f"{path}.xml", headers={"Accept": "application/xml"})
        return resp.content.decode("utf-8", errors="replace")

    def versions(self, project: int, xml_form_id: str) -> list[dict[str, Any]]:
        body = self.get_json(f"{self._form_path(project, xml_form_id)}/versions", check=_is_list("a list of versions"))
        return [v for v in body if isinstance(v, dict)]

    def _form_path(self, project: int, xml_form_id: str) -> str:
        return f"/v1/projects/{int(project)}/forms/{quote(check_xml_form_id(xml_form_id), safe='')}"

    # -- OData ------------------------------------------------------------------------------------------

    def service(self, project: int, xml_form_id: str) -> str:
        return f"{self._form_path(project, xml_form_id)}.svc"

    def odata(self, path: str, params: Mapping[str, str] | None = None, *, etag: str | None = None) -> ODataPage:
        """One page of an OData table (a path under a form's service, or a nextLink already re-based)."""
        headers = {"If-None-Match": etag} if etag else None

        def check(body: Any) -> str | None:
            return None if isinstance(body, dict) and isinstance(body.get("value"), list) else \
                "the answer has no 'value' list"

        parsed: Parsed | None = self.get_parsed(path, params, check, headers=headers)
        if parsed is None:  # 304: nothing changed since the ETag we sent
            return ODataPage([], None, None, etag, not_modified=True)
        body = parsed.body
        count = body.get("@odata.count")
        following = body.get("@odata.nextLink")
        return ODataPage(rows=body["value"], next=self.rebase(following, path) if following else None,
                         count=count if isinstance(count, int) and not isinstance(count, bool) and count >= 0
                         else None, etag=parsed.etag, dirty=parsed.dirty)

    def pages(self, first: ODataPage, what: str) -> Iterator[ODataPage]:
        """`first` and the pages its nextLinks lead to, until a page without a nextLink or without rows; a
        nextLink given before (a server that would loop) is refused. `what`: the table, for the message."""
        page, seen = first, set()
        while True:
            yield page
            if not page.next or not page.rows:
                return
            if page.next in seen:
                raise KoboRefused(f"{self.server_url} answered a nextLink of {what} it had given before: stopping "
                                  "instead of looping")
            seen.add(page.next)
            page = self.odata(page.next)

    def rebase(self, link: Any, asked: str) -> str:
        """A nextLink's path and query, on our server: Central builds it on its configured domain (§5.1). The path
        must stay where the question was asked (the same form's service)."""
        if not isinstance(link, str):
            raise KoboUnavailable(f"{self.server_url} answered a nextLink that is not a link")
        parts = urlsplit(link)
        service = path_of(asked).rsplit(".svc", 1)[0] + ".svc"
        if not parts.path.startswith(service):
            raise KoboRefused(f"{self.server_url} answered a nextLink outside the form's data "
                              f"({storable(parts.path)[:80]}); amina follows only links to the same form")
        return f"{parts.path}?{parts.query}" if parts.query else parts.path

    # -- publishing -------------------------------------------------------------------------------------

    def create_form(self, project: int, xform: bytes, *, publish: bool) -> dict[str, Any]:
        resp = self.request("POST", f"/v1/projects/{int(project)}/forms",
                            params={"publish": "true"} if publish else None, data=xform,
                            headers={"Content-Type": "application/xml"})
        return _json_object(resp, "the new form")

    def create_draft(self, project: int, xml_form_id: str, xform: bytes) -> None:
        self.request("POST", f"{self._form_path(project, xml_form_id)}/draft", data=xform,
                     headers={"Content-Type": "application/xml"})

    def publish_draft(self, project: int, xml_form_id: str, version: str | None = None) -> None:
        self.request("POST", f"{self._form_path(project, xml_form_id)}/draft/publish",
                     params={"version": version} if version else None)

    def delete_draft(self, project: int, xml_form_id: str) -> None:
        self.request("DELETE", f"{self._form_path(project, xml_form_id)}/draft")



def _json_object(resp: requests.Response, what: str) -> dict[str, Any]:
    from sync.http import parse_json

    try:
        body = parse_json(resp.content).body
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise KoboUnavailable(f"Central's answer with {what} is not a JSON object")
    return body


def _is_list(what: str) -> Any:
    def check(body: Any) -> str | None:
        return None if isinstance(body, list) else f"the answer is not {what}"
    return check


def _is_dict(what: str) -> Any:
    def check(body: Any) -> str | None:
        return None if isinstance(body, dict) else f"the answer is not {what}"
    return check
