"""Opens an incident report with openpyxl (a reader ticketd does not use) and
checks what DESIGN §6 promises: the default header, bold and frozen, an
autofilter, real dates, and no "null" cells."""
import datetime
import sys

import openpyxl

HEADER = ["No.", "Estatus", "Tipo", "Guía", "Categoría", "Paquetería", "Asesor",
          "Fecha de ticket", "Fecha estimada", "Resolución"]


def main(path):
    sheet = openpyxl.load_workbook(path).active
    header = [c.value for c in sheet[1]]
    assert header == HEADER, header
    assert all(c.font.bold for c in sheet[1]), "bold header"
    assert sheet.freeze_panes == "A2", sheet.freeze_panes
    assert sheet.auto_filter.ref, "autofilter"
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert rows, "at least one incident"
    for row in rows:
        assert isinstance(row[0], (int, float)), row
        assert isinstance(row[7], datetime.datetime), f"Fecha de ticket is a date: {row[7]!r}"
        assert isinstance(row[8], datetime.datetime), f"Fecha estimada is a date: {row[8]!r}"
        assert "null" not in [str(v).lower() for v in row], row
    print(f"{path}: {len(rows)} rows, header, bold frozen row, autofilter and dates OK")


if __name__ == "__main__":
    main(sys.argv[1])
