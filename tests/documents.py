"""PDFs and images the tests make for themselves (fpdf2, Pillow): no fixtures downloaded."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

LEFT_COLUMN = [
    "Alpha river basins store sediment during floods and release it slowly over decades.",
    "Alpha measurements taken upstream show the same seasonal pattern in every year observed.",
]
RIGHT_COLUMN = [
    "Bravo coastal wetlands absorb storm surges and shelter young fish from predators.",
    "Bravo surveys of the estuary record a steady decline of salt marsh since the dam opened.",
]


def one_column_pdf(path: Path, pages: int = 1, title: str = "Quarterly Report on Water Quality") -> Path:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, f"{title} {number}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, "The monitoring network sampled twelve stations along the river during the "
                             "spring campaign. Nitrate levels stayed below the legal limit at every station, "
                             "while phosphate rose after the heavy rains of April.")
        pdf.ln(4)
        pdf.multi_cell(0, 6, f"Section {number} notes that dissolved oxygen recovered in the lower reach once "
                             "the treatment plant upgrade came online, and that turbidity followed rainfall.")
    pdf.output(str(path))
    return path


def two_column_pdf(path: Path) -> Path:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 12, "Rivers and Coasts Compared", new_x="LMARGIN", new_y="NEXT", align="C")
    pdf.set_font("Helvetica", size=11)
    top = pdf.get_y() + 6
    for x, paragraphs in ((10, LEFT_COLUMN), (110, RIGHT_COLUMN)):
        pdf.set_xy(x, top)
        for text in paragraphs:
            pdf.set_x(x)
            pdf.multi_cell(88, 6, text)
            pdf.ln(5)
    pdf.output(str(path))
    return path


def encrypted_pdf(path: Path, password: str = "s3cret") -> Path:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(0, 10, "Confidential contract terms")
    pdf.set_encryption(owner_password="owner-" + password, user_password=password)
    pdf.output(str(path))
    return path


def as_scan(path: Path, out: Path, dpi: int = 150) -> Path:
    """``path`` printed and scanned: each page an image at ``dpi`` on a page of the same size,
    with no text layer (so the CPU engine reads it with RapidOCR)."""
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(str(path))
    pdf = FPDF(unit="pt")
    pdf.set_auto_page_break(False)
    for number, page in enumerate(document):
        width, height = page.get_size()
        image = out.with_name(f"{out.stem}-{number}.png")
        page.render(scale=dpi / 72).to_pil().convert("L").save(image)
        pdf.add_page(format=(width, height))
        pdf.image(str(image), x=0, y=0, w=width, h=height)
    document.close()
    pdf.output(str(out))
    return out
