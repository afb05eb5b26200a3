"""Reading integer lists such as unit selections ('0-9', '1,4,7', '0-3,8') from text."""

from __future__ import annotations

from fvlab.errors import FvlabError


def parse_int_list(text: str, what: str = "units") -> list[int]:
    """Parse '0-9', '3', '1,4,7' or '0-3,8' into a list of ints."""
    values: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                lo, hi = part.split("-", 1) if not part.startswith("-") else (part, part)
                lo_i, hi_i = int(lo), int(hi)
                if hi_i < lo_i:
                    raise ValueError
                values.extend(range(lo_i, hi_i + 1))
            else:
                values.append(int(part))
    except ValueError as exc:
        raise FvlabError(
            f"cannot read {what} {text!r}; use a range '0-9', a list '1,4,7' or both '0-3,8'"
        ) from exc
    if not values:
        raise FvlabError(f"no {what} given in {text!r}")
    return values
