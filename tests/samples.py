"""Requests several API test modules send alike: a reviewer, an email to summarize, and an invoice whose
model answer fails the rule subtotal + tax = total (so it always goes to review)."""

from __future__ import annotations

__all__ = ["ANA", "EMAIL", "INVOICE", "INVOICE_TEXT"]

ANA = {"name": "Ana Silva", "address": "ana@example.com"}
EMAIL = {
    "email": {"from": "ana@example.com", "subject": "Q3", "body": "Please send the Q3 numbers by Friday."}
}
INVOICE = {
    "vendor": "Northwind Traders Ltd",
    "invoiceNumber": "NW-2041",
    "currency": "GBP",
    "subtotal": 85.0,
    "tax": 17.0,
    "total": 120.0,  # fails the rule subtotal + tax = total: always reviewed
}
INVOICE_TEXT = "Northwind Traders Ltd\nInvoice No: NW-2041\nSubtotal 85.00\nVAT 17.00\nTotal due GBP 102.00\n"
