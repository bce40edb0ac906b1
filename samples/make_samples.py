"""Re-create the generated sample documents (the files are committed; run only to change them).

    .venv/bin/python samples/make_samples.py

field-station-handbook.pdf: six pages, one topic each (headings, a table, a figure), so that
questions in samples/queries.yaml have one right page. notice-board.png: a phone-style scan,
so the notebook shows an image page with text boxes. Needs fpdf2 (in the ``test`` extra).
"""

from __future__ import annotations

import io
from pathlib import Path

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

HERE = Path(__file__).resolve().parent

HANDBOOK = [
    ("1 Site Overview", [
        "The Lake Varna field station was established in 1987 by the regional water authority.",
        "It sits on the northern shore at an altitude of 412 metres, two kilometres from the village of Dolna.",
        "The station hosts up to eight researchers and runs all year, including the ice-covered months.",
    ]),
    ("2 Sampling Schedule", [
        "Each parameter is sampled at the three lake buoys on the schedule below.",
        "Samples are kept at four degrees and reach the laboratory within twenty-four hours.",
    ]),
    ("3 Equipment", [
        "Every buoy carries a multiparameter sonde that logs temperature, oxygen and conductivity.",
        "The sonde is calibrated every fourteen days against reference solutions kept in the laboratory.",
        "Spare sensors are stored in the blue cabinet of the boat house.",
    ]),
    ("4 Safety Rules", [
        "Nobody goes on the water alone: the two-person rule applies to every boat trip.",
        "Life jackets are worn at all times on the jetty and in the boats.",
        "When thunder is heard, all work on the water stops and boats return to shore at once.",
    ]),
    ("5 Data Management", [
        "Sonde logs are uploaded every night to the authority's data server as CSV files.",
        "Each record gets a quality flag; flagged values are reviewed on Monday mornings.",
        "Raw files are never edited: corrections go into a separate table with the reason.",
    ]),
    ("6 Contacts", [
        "Station manager: Elena Markova, office hours Monday to Friday.",
        "In an emergency call the lake rescue service on 112 and then the station manager.",
        "Equipment faults are reported to the technician, Petar Iliev, by e-mail.",
    ]),
]
SCHEDULE = [("Parameter", "Frequency", "Method"), ("Chlorophyll a", "weekly", "fluorometry"),
            ("Total phosphorus", "monthly", "spectrophotometry"), ("Secchi depth", "weekly", "Secchi disc"),
            ("Zooplankton", "quarterly", "net haul")]


def figure_png() -> bytes:
    image = Image.new("RGB", (600, 300), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 560, 120), outline="navy", width=4)  # the buoy
    draw.line((300, 120, 300, 280), fill="black", width=3)  # the cable
    draw.rectangle((270, 230, 330, 290), fill="orange")  # the sonde
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def handbook(path: Path) -> None:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    for title, paragraphs in HANDBOOK:
        pdf.add_page()
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 6, "Lake Varna Field Station - Handbook", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
        pdf.set_font("Helvetica", "B", 18)
        pdf.cell(0, 12, title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", size=12)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 7, paragraph)
            pdf.ln(3)
        if title.startswith("2"):
            with pdf.table(col_widths=(60, 40, 60)) as table:
                for row in SCHEDULE:
                    cells = table.row()
                    for value in row:
                        cells.cell(value)
        if title.startswith("3"):
            pdf.image(io.BytesIO(figure_png()), x=40, y=pdf.get_y() + 5, w=120)
            pdf.set_y(pdf.get_y() + 70)
            pdf.cell(0, 8, "Figure 1: a buoy with its sonde hanging below", align="C")
        pdf.set_y(-20)
        pdf.set_font("Helvetica", size=9)
        pdf.cell(0, 8, str(pdf.page_no()), align="C")
    pdf.output(str(path))


def notice_board(path: Path) -> None:
    image = Image.new("L", (1200, 1600), 245)
    draw = ImageDraw.Draw(image)
    big, body = ImageFont.load_default(size=64), ImageFont.load_default(size=40)
    draw.text((100, 120), "NOTICE", fill=0, font=big)
    lines = ["The boat ramp is closed from 3 to 17 June", "for repairs to the concrete slipway.",
             "", "Launch boats from the east jetty instead.", "", "Questions: ask the station manager."]
    for number, line in enumerate(lines):
        draw.text((100, 300 + number * 70), line, fill=20, font=body)
    image.save(path, dpi=(150, 150))


if __name__ == "__main__":
    handbook(HERE / "field-station-handbook.pdf")
    notice_board(HERE / "notice-board.png")
    print("wrote", HERE / "field-station-handbook.pdf", "and", HERE / "notice-board.png")
