"""NHS numbers: ten digits whose last is a modulus 11 check digit over the first nine."""

from __future__ import annotations

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def normalise(value: str) -> str:
    """Drop the spaces and hyphens people write NHS numbers with (943 476 5919)."""
    return value.replace(" ", "").replace("-", "")


def check_digit(first_nine: str) -> int | None:
    """The check digit for nine digits, or None when no digit can make them valid (remainder 1)."""
    remainder = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True)) % 11
    check = 11 - remainder
    if check == 11:
        return 0
    if check == 10:
        return None
    return check


def is_valid(value: str) -> bool:
    """True for ten digits whose check digit matches (the input should be normalised first)."""
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    return check_digit(value[:9]) == int(value[9])


def format_nhs_number(value: str) -> str:
    """Show an NHS number as people read it: 3-3-4."""
    return f"{value[:3]} {value[3:6]} {value[6:]}" if len(value) == 10 else value
