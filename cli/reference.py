"""Generate the CLI reference (``docs/cli.md``) from the Typer app itself, so the docs cannot drift.

Regenerate with ``python -m geo_segment.cli.reference > docs/cli.md``; a test checks the file matches.
"""

from __future__ import annotations

from typing import Any

import typer

EXIT_CODES = (
    (0, "success"),
    (1, "internal error (a bug: rerun with GEO_SEGMENT_DEBUG=1 and report it)"),
    (2, "usage error: unknown command or option, bad option value"),
    (3, "configuration error: unknown key, wrong type, unknown layout, bad mapping TOML"),
    (4, "input error: missing, empty, undecodable or malformed input file; missing columns; duplicate voter ids;"
        " projected coordinates"),
    (5, "column-contract error between stages"),
    (6, "output error: an output name would leave the output folder"),
    (7, "export refused: a platform limit (vertices, fences, radius range), a minimum size (residents per fence,"
        " audience after dedupe and suppression) or a guardrail (purpose, state rules, EU/EEA consent, forbidden"
        " columns)"),
    (8, "packets could not be printed to PDF: Chromium missing or failing (HTML packets are written first)"),
    (130, "interrupted"),
)


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    found = [(path, cmd)]
    if hasattr(cmd, "commands"):
        for name in sorted(cmd.commands):
            found += _walk(cmd.commands[name], [*path, name])
    return found


def _param_row(p: Any) -> str:
    if p.param_type_name == "argument":
        name = f"`{str(p.name).upper()}`"
        kind = "argument"
    else:
        name = ", ".join(f"`{o}`" for o in p.opts)
        kind = "flag" if p.is_flag else "option"
    help_text = (getattr(p, "help", None) or "").replace("|", "\\|")
    default = p.default
    hidden = default is None or default is False or kind == "argument"
    show = "" if hidden else f"`{getattr(default, 'value', default)}`"
    required = "yes" if p.required else ""
    return f"| {name} | {kind} | {help_text} | {show} | {required} |"


def render_reference() -> str:
    """Return the Markdown CLI reference."""
    from geo_segment.cli.app import app

    root = typer.main.get_command(app)
    lines = [
        "# CLI reference",
        "",
        "Generated from the code by `python -m geo_segment.cli.reference`; `tests/test_docs.py` checks it is current.",
        "",
        "## Exit codes",
        "",
        "| code | meaning |",
        "|---|---|",
        *[f"| {code} | {meaning} |" for code, meaning in EXIT_CODES],
        "",
        "Errors print one line on stderr: what went wrong, where (file, line, column), what was expected, what was "
        "found and how to fix it. Tracebacks never show local variables (voter files hold personal data).",
        "",
    ]
    for path, cmd in _walk(root, ["geo-segment"]):
        if hasattr(cmd, "commands") and len(path) == 1:
            continue
        lines += [f"## `{' '.join(path)}`", "", (cmd.help or "").strip(), ""]
        if hasattr(cmd, "commands"):
            lines += ["Subcommands: " + ", ".join(f"`{n}`" for n in sorted(cmd.commands)), ""]
            continue
        params = [p for p in cmd.params if p.name != "help"]
        if params:
            lines += ["| name | kind | help | default | required |", "|---|---|---|---|---|"]
            lines += [_param_row(p) for p in params]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(render_reference(), end="")
