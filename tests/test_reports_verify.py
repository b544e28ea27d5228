"""Packs anyone can verify: a signed report checked through `POST /v1/{workspace}/reports/verify` and the verify
page (headless Chromium uploading the file), and the workspace certificate from the settings page trusted by a
reader's own tools (poppler's `pdfsig` with an NSS database made by `certutil`, and pyHanko).

The packs are real: HTML rendered by WeasyPrint and signed by `sign_report` with the running cloud's secret,
which writes `report.signed` with the document's SHA-256 as the report endpoints do (those need built marts;
tests/test_reports_pdf.py covers them on the demo workspace).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from cloud_support import PASSWORD, CloudProcess, DashboardPage, Person
from halton_api.pdf.render import render_pdf_sync
from halton_api.pdf.signing import SignedReport, sign_report, verify_pdf
from halton_api.pdf.verification import MAX_PDF_BYTES
from halton_api.store import workspaces
from halton_api.store.audit import Actor
from halton_api.testing.factories import run
from halton_api.testing.pdf import nss_trusting, pdf_signatures

PACK_HTML = """<html><body><h1>Executive summary</h1><p>Spend this month: $1,234.56</p>
<table>{rows}</table></body></html>""".format(
    rows="".join(f"<tr><td>Project {n}</td><td>${n * 17}.00</td></tr>" for n in range(40))
)
REPORT = SignedReport(
    kind="executive", title="Executive summary", period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)
)


def sign_pack(cloud: CloudProcess, slug: str) -> bytes:
    """A report rendered by WeasyPrint and signed as the cloud signs one (key made on first use, audited)."""
    database_url = cloud.env["HALTON_DATABASE_URL"]
    workspace = run(database_url, lambda c: workspaces.get_workspace(c, slug=slug))
    assert workspace is not None
    pdf = render_pdf_sync(PACK_HTML)
    return run(
        database_url,
        lambda c: sign_report(
            c,
            workspace=workspace,
            secret=cloud.env["HALTON_SECRET_KEY"].encode(),
            pdf_bytes=pdf,
            report=REPORT,
            actor=Actor.system("board pack test"),
            location="127.0.0.1",
        ),
    )


def tampered(pdf: bytes) -> bytes:
    """One byte of the first page's content stream (covered by the signature) changed."""
    changed = bytearray(pdf)
    changed[pdf.index(b"stream\n", pdf.index(b"/Length")) + len(b"stream\n") + 40] ^= 0x01
    return bytes(changed)


@pytest.fixture
def acme(cloud: CloudProcess) -> Iterator[Person]:
    person = Person(cloud.url, f"ada-{secrets.token_hex(3)}@acme.example").sign_up("Acme Co")
    yield person
    person.client.close()


@pytest.fixture
def other(cloud: CloudProcess) -> Iterator[Person]:
    person = Person(cloud.url, f"olu-{secrets.token_hex(3)}@other.example").sign_up("Other Co")
    yield person
    person.client.close()


def api_key(person: Person) -> str:
    ws = person.workspace_slug
    page = person.post_form(
        f"/{ws}/settings/advanced/api-keys", f"/{ws}/settings/advanced", {"name": "pack checker"}
    )
    return re.search(r'value="(hm_key_[A-Za-z0-9]+)"', page.text).group(1)


def test_a_pack_verifies_through_the_api_and_anything_else_is_named(
    cloud: CloudProcess, acme: Person, other: Person
) -> None:
    ws = acme.workspace_slug
    pack = sign_pack(cloud, ws)
    theirs = sign_pack(cloud, other.workspace_slug)
    script = httpx.Client(
        base_url=cloud.url, headers={"authorization": f"Bearer {api_key(acme)}"}, timeout=60
    )

    def verify(body: bytes, content_type: str = "application/pdf", client: httpx.Client = script):
        return client.post(f"/v1/{ws}/reports/verify", content=body, headers={"content-type": content_type})

    try:
        answer = verify(pack)
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert found["verified"] and found["verdict"] == "verified" and found["signature_valid"]
        assert found["workspace"] == ws and found["signer"] == "Acme Co (Halton Meter)"
        assert found["sha256"] == hashlib.sha256(pack).hexdigest() and found["bytes"] == len(pack)
        assert found["signed_at"] and found["certificate_fingerprint"]
        issued = found["issued"]
        assert issued["report"] == "Executive summary (2026-11-01/2026-11-30)"
        assert issued["issued_by"] == "board pack test" and issued["kind"] == "executive"
        assert found["summary"].startswith(
            "Signed by Acme Co and unaltered: these exact bytes were issued as"
        )
        # A signed-in member gets the same answer (the same auth as the other report endpoints).
        assert verify(pack, client=acme.client).json()["verdict"] == "verified"

        # One byte changed: the signature is Acme's but no longer matches; those bytes were never issued.
        changed = verify(tampered(pack)).json()
        assert (changed["verified"], changed["verdict"], changed["issued"]) == (False, "altered", None)
        assert "changed since" in changed["summary"] and not changed["signature_valid"]
        # Bytes appended after signing: the signature no longer covers the whole file.
        appended = verify(pack + b"\n% a note added later\n").json()
        assert appended["verdict"] == "altered" and "added to the file" in appended["summary"]
        # Another workspace's pack: named as such, with the signer its certificate states.
        foreign = verify(theirs).json()
        assert foreign["verdict"] == "other_signer" and not foreign["verified"]
        assert "“Other Co (Halton Meter)”" in foreign["summary"] and "not Acme Co's" in foreign["summary"]
        unsigned = verify(render_pdf_sync(PACK_HTML)).json()
        assert unsigned["verdict"] == "unsigned" and "carries no signature" in unsigned["summary"]

        # What is not a PDF at all is refused, saying why.
        not_pdf = verify(b"Quarterly figures, trust me\n" * 10)
        assert not_pdf.status_code == 422 and "not a PDF" in not_pdf.json()["detail"]
        assert "empty" in verify(b"").json()["detail"]
        broken = verify(b"%PDF-1.7\nthis is where the objects should be\n")
        assert broken.status_code == 422 and "not a readable PDF" in broken.json()["detail"]
        for cut in (200, len(pack) // 2, len(pack) - 30):  # a download cut short: never an error of ours
            assert verify(pack[:cut]).status_code in (200, 422)
        as_form = verify(pack, content_type="application/x-www-form-urlencoded")
        assert as_form.status_code == 415 and "Content-Type: application/pdf" in as_form.json()["detail"]
        huge = verify(b"%PDF-1.7\n" + b"0" * MAX_PDF_BYTES)
        assert huge.status_code == 413 and "at most 20.0 MB" in huge.json()["detail"]

        # Only this workspace's keys and members may ask.
        assert verify(pack, client=other.client).status_code == 404
        assert httpx.post(f"{cloud.url}/v1/{ws}/reports/verify", content=pack).status_code == 401
        assert (
            script.post(
                f"/v1/{other.workspace_slug}/reports/verify",
                content=theirs,
                headers={"content-type": "application/pdf"},
            ).status_code
            == 403
        )
    finally:
        script.close()


def test_the_certificate_from_settings_lets_a_reader_trust_the_pack(
    cloud: CloudProcess, acme: Person, other: Person, tmp_path: Path
) -> None:
    ws = acme.workspace_slug
    settings = f"/{ws}/settings/advanced"
    assert "No report signed yet" in acme.client.get(settings).text
    assert acme.client.get(f"{settings}/signing-certificate.pem").status_code == 404

    pack = sign_pack(cloud, ws)
    page = acme.client.get(settings).text
    download = acme.client.get(f"{settings}/signing-certificate.pem")
    assert download.status_code == 200 and download.headers["content-type"] == "application/x-pem-file"
    assert f'filename="{ws}-report-signing.pem"' in download.headers["content-disposition"]
    certificate = x509.load_pem_x509_certificate(download.content)
    # The page shows the fingerprint a reader compares with `openssl x509 -fingerprint -sha256`.
    fingerprint = certificate.fingerprint(certificate.signature_hash_algorithm).hex().upper()
    shown = re.search(r"<code data-fingerprint>([0-9A-F:]+)</code>", page).group(1)
    assert shown.replace(":", "") == fingerprint and re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", shown)
    # Not only for admins: any member may hand the certificate to a reader.
    assert other.client.get(f"{settings}/signing-certificate.pem").status_code == 404

    # A reader with nothing but poppler: valid, but nobody vouches for the signer.
    plain = pdf_signatures(pack)
    assert "Signature is Valid." in plain and "Certificate issuer isn't Trusted." in plain
    # The same reader after trusting the downloaded certificate, as the README says.
    trusting = nss_trusting(download.content, tmp_path / "nssdb")
    trusted = pdf_signatures(pack, nssdir=trusting)
    assert "Signature is Valid." in trusted and "Certificate is Trusted." in trusted, trusted
    assert "Signer Certificate Common Name: Acme Co (Halton Meter)" in trusted
    assert "Digest Mismatch." in pdf_signatures(tampered(pack), nssdir=trusting)
    # Trusting Acme's certificate says nothing for another workspace's pack.
    theirs = pdf_signatures(sign_pack(cloud, other.workspace_slug), nssdir=trusting)
    assert "Certificate is Trusted." not in theirs
    # pyHanko, trusting exactly the downloaded certificate, agrees.
    assert verify_pdf(pack, certificate).ok
    assert not verify_pdf(tampered(pack), certificate).ok


def test_the_verify_page_checks_an_uploaded_pack_in_a_browser(
    chromium, cloud: CloudProcess, acme: Person, other: Person, tmp_path: Path, artifacts_dir: Path
) -> None:
    ws = acme.workspace_slug
    files = {
        "acme-pack.pdf": sign_pack(cloud, ws),
        "other-pack.pdf": sign_pack(cloud, other.workspace_slug),
        "notes.txt": b"not a pack\n",
    }
    files["acme-pack-edited.pdf"] = tampered(files["acme-pack.pdf"])
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    # Members only, like the other report pages.
    assert other.client.get(f"/{ws}/reports/verify").status_code == 404
    anonymous = httpx.get(f"{cloud.url}/{ws}/reports/verify")
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/signin")

    context = chromium.new_context(viewport={"width": 1280, "height": 900}, base_url=cloud.url)
    try:
        tab = DashboardPage(context.new_page(), demo=None)
        tab.sign_in(acme.email, PASSWORD)
        page = tab.page
        page.click("nav >> text=Verify a PDF")
        page.wait_for_url(f"**/{ws}/reports/verify")

        def upload(name: str) -> None:
            page.set_input_files("[data-verify-form] input[type=file]", str(tmp_path / name))
            page.click("[data-verify-form] button[type=submit]")
            page.wait_for_load_state()

        upload("acme-pack.pdf")
        assert page.locator("[data-verdict]").get_attribute("data-verdict") == "verified"
        assert page.locator("h2#verdict-h").inner_text() == "Verified"
        assert "Signed by Acme Co and unaltered" in page.locator("[data-verify-summary]").inner_text()
        assert page.locator("[data-verify-signer]").inner_text() == "Acme Co (Halton Meter)"
        assert (
            "Executive summary (2026-11-01/2026-11-30)" in page.locator("[data-verify-issued]").inner_text()
        )
        tab.screenshot(artifacts_dir, "verify-pack-verified")

        upload("acme-pack-edited.pdf")
        assert page.locator("[data-verdict]").get_attribute("data-verdict") == "altered"
        assert "no report with these exact bytes" in page.locator("[data-verify-issued]").inner_text()
        tab.screenshot(artifacts_dir, "verify-pack-altered")

        upload("other-pack.pdf")
        assert page.locator("[data-verdict]").get_attribute("data-verdict") == "other_signer"
        assert "Other Co (Halton Meter)" in page.locator("[data-verify-summary]").inner_text()

        # Not a PDF: the page says so (a 422 page, which the browser logs as a failed resource).
        upload("notes.txt")
        assert "notes.txt is not a PDF" in page.locator("[data-verify-error]").inner_text()
        assert page.locator("[data-verdict]").count() == 0
        tab.errors[:] = [e for e in tab.errors if "422" not in e]

        # The certificate a reader is given: downloaded from the settings page, the fingerprint it shows.
        page.click("[data-verify-form] ~ p a:has-text('workspace certificate')")
        page.wait_for_url(f"**/{ws}/settings/advanced#signing")
        with page.expect_download() as info:
            page.click("[data-certificate-download]")
        certificate = x509.load_pem_x509_certificate(Path(info.value.path()).read_bytes())
        shown = page.locator("[data-fingerprint]").first.inner_text()
        assert (
            shown.replace(":", "").lower()
            == certificate.fingerprint(certificate.signature_hash_algorithm).hex()
        )
        # pyHanko runs an event loop of its own: not in this thread, where Playwright's is running.
        with ThreadPoolExecutor(1) as thread:
            assert thread.submit(verify_pdf, files["acme-pack.pdf"], certificate).result().ok
        page.locator("#signing").scroll_into_view_if_needed()
        tab.screenshot(artifacts_dir, "settings-report-signatures")
    finally:
        context.close()
    assert tab.errors == [], f"console errors: {tab.errors}"
