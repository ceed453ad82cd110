"""The reports of a run, each a rendering of the run document (record.py): terminal text (`terminal.py`),
Markdown (`markdown.py`), self-contained HTML (`html.py`), JUnit properties (`junit.py`); `files.py` writes
those asked for."""
