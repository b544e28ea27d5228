"""PDF reports: HTML rendered to PDF with WeasyPrint (`render`), then optionally signed with pyHanko (`signing`)."""
