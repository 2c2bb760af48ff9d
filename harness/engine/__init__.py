"""The run engine: study files → resolved runs → run store → execution → tracking hooks."""
