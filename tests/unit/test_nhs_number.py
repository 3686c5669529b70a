"""NHS numbers: the modulus 11 check, normalisation and display."""

from __future__ import annotations

import pytest

from flagging.nhs_number import check_digit, format_nhs_number, is_valid, normalise
from tests.samples import INVALID_NHS_NUMBER, NHS_NUMBERS


@pytest.mark.parametrize("number", NHS_NUMBERS)
def test_test_range_numbers_pass_the_check(number: str) -> None:
    assert is_valid(number)


def test_a_known_issued_style_number_passes_the_check() -> None:
    # 943 476 5919 is the NHS's own published example.
    assert is_valid("9434765919")


def test_check_digit_is_eleven_minus_the_weighted_remainder() -> None:
    # 9*10 + 9*9 + 9*8 + 1*2 = 245; 245 % 11 = 3; 11 - 3 = 8
    assert check_digit("999000001") == 8


def test_remainder_zero_gives_check_digit_zero() -> None:
    # 9*10 + 9*9 + 9*8 + 5*2 = 253 = 11 * 23
    assert check_digit("999000005") == 0
    assert is_valid("9990000050")


def test_remainder_one_gives_no_possible_check_digit() -> None:
    # 9*10 + 9*9 + 9*8 = 243; 243 % 11 = 1; 11 - 1 = 10, which no digit can be
    assert check_digit("999000000") is None


@pytest.mark.parametrize("last", "0123456789")
def test_a_number_whose_check_would_be_ten_is_never_valid(last: str) -> None:
    assert not is_valid("999000000" + last)


def test_wrong_check_digit_is_invalid() -> None:
    assert not is_valid(INVALID_NHS_NUMBER)


@pytest.mark.parametrize("last", "0123456789")
def test_only_the_matching_check_digit_is_valid(last: str) -> None:
    assert is_valid("999000001" + last) is (last == "8")


@pytest.mark.parametrize("value", ["", "999000001", "99900000180", "999000001800"])
def test_wrong_length_is_invalid(value: str) -> None:
    assert not is_valid(value)


@pytest.mark.parametrize(
    "value",
    [
        "999000001X",
        "999 000 0018",
        "999-000-0018",
        "+999000018",
        "-999000018",
        " 999000018",
        "\uff19\uff19\uff19\uff10\uff10\uff10\uff10\uff10\uff11\uff18",  # full-width digits
        "\u0669\u0669\u0669\u0660\u0660\u0660\u0660\u0660\u0661\u0668",  # Arabic-Indic digits
    ],
)
def test_anything_but_ten_ascii_digits_is_invalid(value: str) -> None:
    assert not is_valid(value)


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("999 000 0018", "9990000018"),
        ("999-000-0018", "9990000018"),
        (" 999 000-0018 ", "9990000018"),
        ("9990000018", "9990000018"),
    ],
)
def test_normalise_drops_spaces_and_hyphens(written: str, normalised: str) -> None:
    assert normalise(written) == normalised
    assert is_valid(normalise(written))


def test_normalise_leaves_other_characters_for_the_check_to_reject() -> None:
    assert normalise("999.000.0018") == "999.000.0018"
    assert not is_valid(normalise("999.000.0018"))


def test_format_shows_three_three_four() -> None:
    assert format_nhs_number("9990000018") == "999 000 0018"


def test_format_leaves_a_value_of_the_wrong_length_alone() -> None:
    assert format_nhs_number("12345") == "12345"


def test_format_and_normalise_round_trip() -> None:
    assert normalise(format_nhs_number("9434765919")) == "9434765919"
