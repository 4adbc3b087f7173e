"""Real documents for the index tests, the benchmark and the server's /v1/ask tests.

Corpus writers that produce real files of every supported type with the field's own libraries
(python-docx, fpdf2, extract-msg's OLE writer for .msg, msoffcrypto-tool for a password-protected
.docx), and `make_corpus`, whose documents each hold one known fact and the question it answers.

fpdf2 and msoffcrypto-tool are test dependencies, which is why this lives in tests/ and not in the product
package (the embedder fake, `HashEmbedder`, is in `deskpilot.indexes.embedding`; the Graph stand-in writes
its own files, see `deskpilot.server.connectors.standin._files`).
"""

from __future__ import annotations

import email.utils
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

__all__ = [
    "FACTS",
    "CorpusDoc",
    "filler",
    "make_corpus",
    "write_bad_files",
    "write_docx",
    "write_eml",
    "write_encrypted_docx",
    "write_html",
    "write_msg",
    "write_pdf",
]


# (fact, question): each corpus document holds one fact; the question should retrieve it.
FACTS: tuple[tuple[str, str], ...] = (
    (
        "The annual company picnic will take place at Riverside Park on June 14th.",
        "Where is the annual company picnic held?",
    ),
    (
        "The espresso machine on the fourth floor is descaled every Friday afternoon by facilities.",
        "How often is the espresso machine descaled?",
    ),
    (
        "Our warranty on the Model X200 industrial pump lasts seven years from installation.",
        "How long is the warranty on the X200 pump?",
    ),
    (
        "The Berlin data center has run on hydroelectric power since 2021.",
        "What energy source powers the Berlin data center?",
    ),
    (
        "New employees receive a laptop with 32 gigabytes of memory and a docking station.",
        "What laptop do new employees get?",
    ),
    (
        "The parking garage closes at 11 pm on weekdays and stays closed on Sundays.",
        "When does the parking garage close?",
    ),
    (
        "Travel expenses above 500 euros need approval from the finance director, Ingrid Solberg.",
        "Who approves travel expenses above 500 euros?",
    ),
    (
        "The customer churn rate fell to 3.2 percent in the third quarter.",
        "What was the customer churn rate in the third quarter?",
    ),
    (
        "The fire evacuation assembly point is the north corner of the visitor car park.",
        "Where is the fire evacuation assembly point?",
    ),
    (
        "Project Nightingale migrates the billing system from Oracle to PostgreSQL by March.",
        "Which database is the billing system moving to?",
    ),
    (
        "The Tokyo sales team exceeded its target by 18 percent thanks to the robotics contract.",
        "By how much did the Tokyo sales team beat its target?",
    ),
    (
        "Our cafeteria serves a vegan lasagna every Thursday at lunch.",
        "On which day is vegan lasagna served in the cafeteria?",
    ),
    (
        "The penetration test found an outdated TLS configuration on the customer portal.",
        "What security issue did the penetration test find?",
    ),
    (
        "Parental leave at the company is twenty weeks, fully paid, for every parent.",
        "How long is paid parental leave?",
    ),
    (
        "The board approved a dividend of 1.40 dollars per share for this year.",
        "What dividend per share did the board approve?",
    ),
    (
        "The new logo shows a teal hummingbird drawn by an Amsterdam design studio.",
        "Which bird appears in the new logo?",
    ),
    (
        "Server backups are kept for ninety days in an encrypted storage bucket in Frankfurt.",
        "How long are server backups retained?",
    ),
    (
        "The chemistry lab requires safety goggles and a flame-resistant coat at all times.",
        "What protective equipment is required in the chemistry lab?",
    ),
    (
        "Marco Rossi will replace Helen Park as head of customer support in September.",
        "Who will become the new head of customer support?",
    ),
    (
        "The delivery fleet switched to electric vans, cutting fuel costs by 40 percent.",
        "How much did switching to electric vans reduce fuel costs?",
    ),
    (
        "The library of the Madrid office lends books for up to three weeks.",
        "How long can books be borrowed from the Madrid office library?",
    ),
    (
        "Our mobile app crashed on Android 14 because of a memory leak in the image cache.",
        "Why did the mobile app crash on Android?",
    ),
    (
        "The quarterly town hall is streamed live from the Toronto auditorium.",
        "Where is the quarterly town hall streamed from?",
    ),
    (
        "Bicycles can be parked in the basement storage room, which opens with an employee badge.",
        "Where can employees park their bicycles?",
    ),
    (
        "The supplier Nordic Timber delivers oak planks every second Tuesday.",
        "How often does Nordic Timber deliver oak planks?",
    ),
    (
        "The Wednesday yoga class is taught by a certified instructor named Priya.",
        "Who teaches the yoga class on Wednesdays?",
    ),
    (
        "The rooftop solar panels generated 120 megawatt hours of electricity last year.",
        "How much electricity did the rooftop solar panels produce?",
    ),
    (
        "Password resets require a verification code sent to the registered phone number.",
        "What is needed to reset a password?",
    ),
    (
        "The museum sponsorship gives employees free entry on the first Sunday of each month.",
        "When do employees get free entry to the museum?",
    ),
    (
        "Customer complaints about late shipments doubled during the December holiday rush.",
        "What happened to complaints about late shipments in December?",
    ),
    (
        "The cleanroom temperature must stay between 19 and 21 degrees Celsius.",
        "What temperature range is required in the cleanroom?",
    ),
    (
        "The chess club meets in conference room Kilimanjaro on Monday evenings.",
        "Where does the chess club meet?",
    ),
    (
        "Our French distributor Lumiere SA holds exclusive distribution rights until 2027.",
        "Until when does the French distributor hold exclusive rights?",
    ),
    (
        "The company was founded in 1987 in Gothenburg by two marine engineers.",
        "Where and when was the company founded?",
    ),
    ("Interns are paid a monthly stipend of 1,800 euros.", "How much is the monthly stipend for interns?"),
    (
        "The drone inspection of the wind turbines is scheduled for early October.",
        "When is the drone inspection of the wind turbines?",
    ),
    (
        "Visitors must sign the non-disclosure agreement at reception before entering the lab.",
        "What must visitors sign at reception?",
    ),
    (
        "Used printer cartridges are collected for recycling in the mailroom.",
        "Where are used printer cartridges collected?",
    ),
    (
        "The property insurance policy covers water damage but excludes earthquakes.",
        "Does the property insurance cover earthquakes?",
    ),
    (
        "The marketing budget for the spring campaign is 250,000 dollars.",
        "What is the budget for the spring marketing campaign?",
    ),
    (
        "Sourdough for the bakery line is fermented for 36 hours before baking.",
        "How long is the sourdough fermented?",
    ),
    (
        "The CEO will present the five-year strategy at the Vienna conference in November.",
        "Where will the CEO present the five-year strategy?",
    ),
)

_FILLER = (
    "Please find the notes from our recent discussion below.",
    "Several colleagues shared their thoughts during the session.",
    "We will revisit the open points at a later date.",
    "Thank you all for your contributions and patience.",
    "This document will be updated as new information becomes available.",
    "Feel free to reach out with any questions or comments.",
    "Action items were assigned to their respective owners.",
    "The timeline remains subject to change.",
    "A summary of the key decisions follows.",
    "Attendance was good and the discussion was lively.",
    "Some details still need to be confirmed with the relevant stakeholders.",
    "The next review is planned for the coming weeks.",
    "Everyone agreed that clear communication is important.",
    "Minutes were taken and circulated after the call.",
    "Further background can be found in earlier correspondence.",
    "We appreciate the effort that went into preparing the materials.",
)


def filler(rng: random.Random, sentences: int) -> str:
    return " ".join(rng.choice(_FILLER) for _ in range(sentences))


@dataclass
class CorpusDoc:
    path: Path
    kind: str
    fact: str
    question: str
    page: int | None = None  # the page that holds the fact, for PDFs


def write_docx(
    path: Path, paragraphs: Sequence[str], *, title: str = "", table: Sequence[Sequence[str]] = ()
) -> Path:
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
        document.add_heading(title, level=1)
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    document.save(str(path))
    return path


def write_encrypted_docx(path: Path, text: str, password: str = "secret") -> Path:
    """A real password-protected .docx (ECMA-376 agile encryption), as Word writes it."""
    import io

    import docx
    from msoffcrypto.format.ooxml import OOXMLFile

    plain = io.BytesIO()
    document = docx.Document()
    document.add_paragraph(text)
    document.save(plain)
    plain.seek(0)
    encrypted = io.BytesIO()
    OOXMLFile(plain).encrypt(password, encrypted)
    path.write_bytes(encrypted.getvalue())
    return path


def write_pdf(path: Path, pages: Sequence[str], *, title: str = "", password: str | None = None) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if password:
        pdf.set_encryption(owner_password=password + "-owner", user_password=password)
    for text in pages:
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        if text:
            pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.rect(20, 20, 50, 30)  # a page with a drawing and no text, like a scan
    pdf.output(str(path))
    return path


def write_html(path: Path, title: str, paragraphs: Sequence[str]) -> Path:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    path.write_text(
        f"<!doctype html><html><head><title>{title}</title><style>p {{ color: #333 }}</style>"
        f"<script>var tracking = 'not text';</script></head><body><h1>{title}</h1>\n{body}\n</body></html>",
        encoding="utf-8",
    )
    return path


def write_eml(
    path: Path,
    subject: str,
    body: str,
    *,
    sender: str = "Alice Example <alice@example.com>",
    to: str = "Bob Example <bob@example.com>",
    date: datetime | None = None,
    html: bool = False,
) -> Path:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = to
    message["Date"] = email.utils.format_datetime(date or datetime(2024, 5, 6, 9, 30, tzinfo=UTC))
    message["Message-ID"] = email.utils.make_msgid(domain="example.com")
    if html:
        message.set_content(f"<html><body><p>{body}</p></body></html>", subtype="html")
    else:
        message.set_content(body)
    path.write_bytes(bytes(message))
    return path


def _filetime(value: datetime) -> int:
    return int((value - datetime(1601, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1)) * 10


def write_msg(
    path: Path,
    subject: str,
    body: str,
    *,
    sender: str = "Alice Example",
    sender_email: str = "alice@example.com",
    date: datetime | None = None,
) -> Path:
    """A minimal Outlook .msg (an OLE compound file of MAPI property streams, [MS-OXMSG])."""
    from extract_msg.ole_writer import OleWriter

    writer = OleWriter()

    def unicode_property(tag: str, value: str) -> None:  # PT_UNICODE properties are streams
        writer.addEntry(f"__substg1.0_{tag}001F", value.encode("utf-16-le"))

    unicode_property("001A", "IPM.Note")  # message class
    unicode_property("0037", subject)
    unicode_property("1000", body)
    unicode_property("0C1A", sender)
    unicode_property("0C1F", sender_email)
    sent = _filetime(date or datetime(2024, 5, 6, 9, 30, tzinfo=UTC))
    # Fixed-size properties live in one stream: a 32-byte header, then 16 bytes per property
    # (tag, flags, value): PidTagClientSubmitTime and PidTagMessageDeliveryTime (PT_SYSTIME).
    properties = (
        b"\0" * 32 + struct.pack("<IIQ", 0x00390040, 6, sent) + struct.pack("<IIQ", 0x0E060040, 6, sent)
    )
    writer.addEntry("__properties_version1.0", properties)
    writer.addEntry("__nameid_version1.0", storage=True)
    writer.write(str(path))
    return path


def write_bad_files(folder: Path) -> dict[str, str]:
    """Files that must be skipped, each with the SkipReason value expected for it."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    junk = bytes(rng.randrange(256) for _ in range(4096))
    (folder / "empty.md").write_bytes(b"")
    (folder / "junk.txt").write_bytes(junk)
    (folder / "corrupt.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\n" + junk)
    (folder / "broken.docx").write_bytes(b"PK\x03\x04" + junk)
    (folder / "broken.msg").write_bytes(junk)
    write_encrypted_docx(folder / "locked.docx", "The secret merger code name is Bluebird.")
    write_pdf(folder / "locked.pdf", ["The secret acquisition target is Redwood."], password="pw")
    write_pdf(folder / "scan.pdf", [""])
    return {
        "empty.md": "empty",
        "junk.txt": "binary",
        "corrupt.pdf": "corrupt",
        "broken.docx": "corrupt",
        "broken.msg": "corrupt",
        "locked.docx": "encrypted",
        "locked.pdf": "encrypted",
        "scan.pdf": "no_text",
    }


_SUBJECTS = ("weekly update", "meeting notes", "information", "for your records", "follow-up", "summary")
_KINDS = ("txt", "md", "html", "eml", "msg", "docx", "pdf")


def make_corpus(folder: Path, per_type: int = 6, *, seed: int = 0, long_every: int = 3) -> list[CorpusDoc]:
    """`per_type` documents of each supported type, each holding one fact from FACTS (cycled).

    Every `long_every`-th document is long enough for several chunks, with its fact in the middle;
    PDFs then put the fact on page 2.
    """
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    docs: list[CorpusDoc] = []
    n = 0
    for kind in _KINDS:
        sub = folder / kind
        sub.mkdir(exist_ok=True)
        for i in range(per_type):
            fact, question = FACTS[n % len(FACTS)]
            number = n
            n += 1
            long = long_every > 0 and i % long_every == long_every - 1
            before = filler(rng, 14 if long else 3)
            after = filler(rng, 14 if long else 3)
            title = f"Note {number}: {_SUBJECTS[number % len(_SUBJECTS)]}"
            body = f"{before} {fact} {after}"
            path = sub / f"doc{number:04d}.{kind}"
            page = None
            if kind == "txt":
                path.write_text(f"{title}\n\n{before}\n\n{fact}\n\n{after}\n", encoding="utf-8")
            elif kind == "md":
                path.write_text(f"# {title}\n\n{before}\n\n**Note:** {fact}\n\n{after}\n", encoding="utf-8")
            elif kind == "html":
                write_html(path, title, [before, fact, after])
            elif kind == "eml":
                write_eml(
                    path,
                    title,
                    body,
                    html=i % 2 == 1,
                    date=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=number),
                )
            elif kind == "msg":
                write_msg(
                    path,
                    title,
                    body.replace(". ", ".\r\n"),
                    date=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=number),
                )
            elif kind == "docx":
                write_docx(
                    path,
                    [before, fact, after],
                    title=title,
                    table=[["Owner", "Status"], ["Operations", "Open"]],
                )
            else:
                if long:
                    write_pdf(path, [f"{title}\n{filler(rng, 8)}", f"{before} {fact} {after}"], title=title)
                    page = 2
                else:
                    write_pdf(path, [f"{title}\n{body}"], title=title)
                    page = 1
            docs.append(CorpusDoc(path, kind, fact, question, page))
    return docs
