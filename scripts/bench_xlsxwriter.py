"""Baseline for the export benchmark: Python XlsxWriter in constant_memory mode
writing the same rows as ticketd's default incident report (10 columns, bold
frozen header, autofilter, real dates). The rows are loaded before timing starts;
prints the seconds spent writing."""
import csv
import datetime
import sys
import time

import xlsxwriter

EPOCH = datetime.datetime(1970, 1, 1)
OFFSET = datetime.timedelta(hours=-6)  # America/Mexico_City


def local(micros):
    return EPOCH + datetime.timedelta(microseconds=int(micros)) + OFFSET


def main(rows_csv, out):
    with open(rows_csv, newline="", encoding="utf-8") as f:
        rows = [
            [int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], local(r[7]), local(r[8]), ""]
            for r in csv.reader(f)
        ]
    started = time.perf_counter()
    workbook = xlsxwriter.Workbook(out, {"constant_memory": True})
    sheet = workbook.add_worksheet("Reporte")
    bold = workbook.add_format({"bold": True})
    date = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    headers = ["No.", "Estatus", "Tipo", "Guía", "Categoría", "Paquetería", "Asesor",
               "Fecha de ticket", "Fecha estimada", "Resolución"]
    widths = [8, 16, 16, 20, 26, 16, 20, 18, 18, 30]
    for col, (header, width) in enumerate(zip(headers, widths)):
        sheet.set_column(col, col, width)
        sheet.write_string(0, col, header, bold)
    sheet.freeze_panes(1, 0)
    for i, r in enumerate(rows, start=1):
        sheet.write_number(i, 0, r[0])
        for col in range(1, 7):
            if r[col]:
                sheet.write_string(i, col, r[col])
        sheet.write_datetime(i, 7, r[7], date)
        sheet.write_datetime(i, 8, r[8], date)
    sheet.autofilter(0, 0, len(rows), len(headers) - 1)
    workbook.close()
    print(f"{time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
