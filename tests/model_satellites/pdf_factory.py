"""PDFs written by the tests themselves (fpdf2): reports with known text, and broken files."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF


def report_text(company: str, page: int) -> str:
    """The sentence printed at the top of ``page`` of ``company``'s report."""
    return f"{company} quarterly report, page {page}: revenue grew to {1000 + page} million."


def write_report(path: Path, company: str = "Acme Corp", pages: int = 3) -> Path:
    """A text PDF of ``pages`` pages, each starting with :func:`report_text`."""
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for page in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(text=report_text(company, page))
        pdf.ln(10)
        pdf.multi_cell(0, 7, text=f"Operating income and margins for {company}. " * 8)
    pdf.output(str(path))
    return path


def write_encrypted(path: Path) -> Path:
    """A PDF that needs a user password to open."""
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner-secret", user_password="user-secret")
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="confidential")
    pdf.output(str(path))
    return path


def write_corrupt(path: Path) -> Path:
    """The start of a real PDF with its body and cross-reference table destroyed."""
    good = write_report(path.with_suffix(".tmp.pdf"), pages=1).read_bytes()
    path.write_bytes(good[:60] + b"\x00garbage\xff" * 200)
    path.with_suffix(".tmp.pdf").unlink()
    return path


def write_bad_files(folder: Path) -> dict[str, Path]:
    """Four broken inputs by kind: corrupt, encrypted, empty, and not a PDF at all."""
    folder.mkdir(parents=True, exist_ok=True)
    empty = folder / "empty.pdf"
    empty.write_bytes(b"")
    not_pdf = folder / "notes.pdf"
    not_pdf.write_text("These are meeting notes, saved with the wrong extension.\n")
    return {
        "corrupt": write_corrupt(folder / "corrupt.pdf"),
        "encrypted": write_encrypted(folder / "encrypted.pdf"),
        "empty": empty,
        "not-pdf": not_pdf,
    }
