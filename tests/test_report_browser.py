"""The report in a real browser (issue 21): Debian's chromium, headless, loads the page without a console message
and takes a screenshot that is not blank; printed, the page shows what its closed <details> hold. `make test` installs chromium where it can; elsewhere this skips."""

import re
import shutil
import subprocess

import pytest

from vmctx_emu.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make test installs Debian's)")
WINDOW = "1050,1400"


DARK = ("--force-dark-mode", "--blink-settings=preferredColorScheme=0")  # prefers-color-scheme: dark


def shoot(page, png, *flags):
    """Chromium's console lines while it loads `page` and screenshots it into `png`."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", f"--user-data-dir={png.parent / 'chromium-profile'}", *flags,
                           "--enable-logging=stderr", "--v=0", f"--window-size={WINDOW}", f"--screenshot={png}",
                           page.as_uri()], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert png.exists(), done.stderr[-2000:]
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


@pytest.fixture(scope="module")
def blank(tmp_path_factory):
    """(console lines, screenshot bytes) of an empty page, and of one whose script logs an error: the controls."""
    where = tmp_path_factory.mktemp("controls")
    (where / "blank.html").write_text("<!DOCTYPE html><html><body></body></html>")
    (where / "bad.html").write_text("<!DOCTYPE html><html><body><script>console.error('boom')</script></body></html>")
    blank_console = shoot(where / "blank.html", where / "blank.png")
    bad_console = shoot(where / "bad.html", where / "bad.png")
    assert blank_console == [] and any('"boom"' in line for line in bad_console), bad_console
    return (where / "blank.png").stat().st_size


@pytest.mark.parametrize("scheme", [(), DARK], ids=["light", "dark"])
def test_a_report_loads_without_console_messages_and_is_not_blank(blank, tmp_path, scheme):
    dumps = tmp_path / "d"
    assert main(["demo", "--dump", str(dumps)]) == 0
    page = tmp_path / "report.html"
    assert main(["report", *(str(dumps / n) for n in ("ctx.bin", "before.bin", "after.bin")), "-o", str(page)]) == 0
    png = tmp_path / "report.png"
    assert shoot(page, png, *scheme) == []
    assert png.stat().st_size > 5 * blank  # maps, tables and text, not an empty page


def test_a_layout_svg_renders(blank, tmp_path, capsys):
    assert main(["layout", "--wasmtime", "50", "--lowerings", "3", "--instances", "2", "--svg"]) == 0
    page = tmp_path / "layout.svg"
    page.write_text(capsys.readouterr().out)
    png = tmp_path / "layout.png"
    assert shoot(page, png) == []
    assert png.stat().st_size > 1.5 * blank


def pdf_pages(page, pdf):
    """Pages of the PDF chromium prints `page` to."""
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    f"--user-data-dir={pdf.parent / 'chromium-profile'}", "--no-pdf-header-footer",
                    f"--print-to-pdf={pdf}", page.as_uri()], capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return len(re.findall(rb"/Type\s*/Page\b", pdf.read_bytes()))


def test_a_printed_report_shows_what_its_closed_details_hold(tmp_path):
    from dataclasses import replace

    from vmctx_emu.describe.report import PRINT_OPEN, Report, dump_as_context, report_chunks
    from vmctx_emu.dumps.dump import load_dump

    assert main(["demo", "--dump", str(tmp_path / "d")]) == 0
    ctx = dump_as_context(load_dump(tmp_path / "d" / "before.bin"), "before.bin")
    many = [replace(ctx, address=0x10000 + 0x1000 * i) for i in range(3000)]  # folded: 2,999 addresses in <details>
    text = "".join(report_chunks(Report("print", "seed", "test", {"dump": 3000}, many), max_sections=1))
    (tmp_path / "open.html").write_text(text)
    (tmp_path / "shut.html").write_text(text.replace(PRINT_OPEN, ""))  # the control: details printed closed
    opened, shut = pdf_pages(tmp_path / "open.html", tmp_path / "open.pdf"), pdf_pages(tmp_path / "shut.html",
                                                                                       tmp_path / "shut.pdf")
    assert shut >= 1 and opened > shut, (opened, shut)
