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

HANDBOOK = [  # (title, [(subheading, paragraph)]): topics that share words, so retrieval must tell them apart
    ("1 Site Overview", [
        ("1.1 History", "The Lake Varna field station was established in 1987 by the regional water authority. "
                        "It began as a single hut for winter ice measurements and grew into a year-round station "
                        "after the flood of 1999, when the authority decided that the lake needed daily records."),
        ("1.2 Location and access", "The station sits on the northern shore at an altitude of 412 metres, two "
                                    "kilometres from the village of Dolna. The gravel road is closed to cars "
                                    "between December and March; staff then park at the village and walk in."),
    ]),
    ("2 Sampling Schedule", [
        ("2.1 Lake samples", "Water is sampled at the three lake buoys. Chlorophyll and Secchi depth are measured "
                             "weekly, total phosphorus monthly, and zooplankton once a quarter, always between "
                             "nine and eleven in the morning so that results compare across seasons."),
        ("2.2 Handling", "Bottles are kept at four degrees in the cool box and reach the laboratory within "
                         "twenty-four hours. The fluorometer used for chlorophyll is checked against a standard "
                         "before each weekly run."),
    ]),
    ("3 Equipment", [
        ("3.1 Buoys", "Every buoy carries a multiparameter sonde that logs temperature, oxygen and conductivity "
                      "every ten minutes. Spare sensors are stored in the blue cabinet of the boat house."),
        ("3.2 Calibration", "The sondes are calibrated every fourteen days against reference solutions kept in the "
                            "laboratory fridge. A calibration that drifts by more than two percent is repeated "
                            "the next morning, and the sensor is replaced if it drifts again."),
    ]),
    ("4 Safety Rules", [
        ("4.1 On the water", "Nobody goes on the water alone: the two-person rule applies to every boat trip. "
                             "Life jackets are worn at all times on the jetty and in the boats, and the radio is "
                             "checked before leaving the shore."),
        ("4.2 Storms", "When thunder is heard, all work on the water stops and boats return to shore at once. "
                       "Work resumes thirty minutes after the last thunder, never earlier."),
    ]),
    ("5 Data Management", [
        ("5.1 Uploads", "Sonde logs are uploaded every night to the authority's data server as CSV files. "
                        "If the upload fails, the logger keeps forty days of records, so nothing is lost."),
        ("5.2 Quality control", "Each record gets a quality flag; flagged values are reviewed on Monday mornings. "
                                "Raw files are never edited: corrections go into a separate table with the reason."),
    ]),
    ("6 Contacts", [
        ("6.1 People", "The station manager is Elena Markova, in the office Monday to Friday. Equipment faults "
                       "are reported to the technician, Petar Iliev, by e-mail."),
        ("6.2 Emergencies", "In an emergency, call the lake rescue service on 112 first and then the station "
                            "manager. The first-aid kit hangs beside the door of the boat house."),
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
        for subheading, paragraph in paragraphs:
            pdf.set_font("Helvetica", "B", 14)
            pdf.cell(0, 10, subheading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=12)
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
