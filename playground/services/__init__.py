"""Services: one module per user-level job, shared by the tabs (playground.ui) and the command line (playground.cli).

They own what a job needs beyond the maths: threads and stop flags, files and folders, settings and their checks.
See docs/architecture.md for which module does what.
"""
