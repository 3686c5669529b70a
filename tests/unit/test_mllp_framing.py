"""MLLP framing without sockets: what FrameDecoder makes of the bytes a connection delivers."""

from __future__ import annotations

from hl7.mllp import (
    CARRIAGE_RETURN,
    END_BLOCK,
    OVERSIZE_HEAD_BYTES,
    START_BLOCK,
    Frame,
    FrameDecoder,
    OversizeFrame,
    TruncatedFrame,
    encode,
)
from tests import samples

VT, FS, CR = START_BLOCK, END_BLOCK, CARRIAGE_RETURN
MESSAGE = samples.mdm()
OTHER = samples.mdm(control_id="MSG0002", number="DOC-2")


def feed_all(decoder: FrameDecoder, *chunks: bytes) -> list[Frame | OversizeFrame]:
    events: list[Frame | OversizeFrame] = []
    for chunk in chunks:
        events.extend(decoder.feed(chunk))
    return events


def test_frame_bytes_are_vt_payload_fs_cr() -> None:
    assert encode(b"MSH|x") == b"\x0bMSH|x\x1c\x0d"


def test_one_frame_in_one_read_is_decoded() -> None:
    decoder = FrameDecoder(max_size=1024 * 1024)

    assert decoder.feed(encode(MESSAGE)) == [Frame(MESSAGE)]
    assert not decoder.in_frame
    assert decoder.stray_bytes == 0
    assert decoder.abandoned_frames == 0


def test_encode_round_trips_through_the_decoder() -> None:
    payload = bytes(b for b in range(256) if b not in (VT[0], FS[0]))

    assert FrameDecoder(max_size=1024).feed(encode(payload)) == [Frame(payload)]


def test_several_frames_in_one_read_are_each_decoded_in_order() -> None:
    decoder = FrameDecoder(max_size=1024 * 1024)

    events = decoder.feed(encode(MESSAGE) + encode(OTHER) + encode(b"third"))

    assert events == [Frame(MESSAGE), Frame(OTHER), Frame(b"third")]


def test_frame_split_byte_by_byte_is_decoded_once() -> None:
    decoder = FrameDecoder(max_size=1024 * 1024)
    data = encode(MESSAGE)
    events: list[Frame | OversizeFrame] = []

    for i in range(len(data)):
        got = decoder.feed(data[i : i + 1])
        if i < len(data) - 2:  # nothing before the end block arrives
            assert got == []
            assert decoder.in_frame
        events.extend(got)

    assert events == [Frame(MESSAGE)]
    assert not decoder.in_frame


def test_frame_split_between_end_block_and_carriage_return_is_decoded_once() -> None:
    decoder = FrameDecoder(max_size=1024)
    data = encode(b"MSH|a") + encode(b"MSH|b")
    cut = data.index(FS) + 1

    assert feed_all(decoder, data[:cut], data[cut:]) == [Frame(b"MSH|a"), Frame(b"MSH|b")]
    assert decoder.stray_bytes == 0


def test_in_frame_is_true_only_while_a_frame_is_partly_read() -> None:
    decoder = FrameDecoder(max_size=1024)
    assert not decoder.in_frame

    decoder.feed(VT + b"MSH|")
    assert decoder.in_frame

    decoder.feed(b"rest" + FS + CR)
    assert not decoder.in_frame


def test_cr_lf_and_whitespace_between_frames_are_not_counted_as_stray() -> None:
    decoder = FrameDecoder(max_size=1024)

    events = decoder.feed(b"\r\n" + encode(b"MSH|a") + b"\r\n \t\n" + encode(b"MSH|b") + b"\n")

    assert events == [Frame(b"MSH|a"), Frame(b"MSH|b")]
    assert decoder.stray_bytes == 0


def test_stray_bytes_between_frames_are_counted_and_skipped() -> None:
    decoder = FrameDecoder(max_size=1024)

    events = decoder.feed(b"junk" + encode(b"MSH|a") + b"xy" + encode(b"MSH|b"))

    assert events == [Frame(b"MSH|a"), Frame(b"MSH|b")]
    assert decoder.stray_bytes == 6


def test_stray_byte_count_ignores_line_breaks_among_the_stray_bytes() -> None:
    decoder = FrameDecoder(max_size=1024)

    decoder.feed(b"ab\r\ncd" + encode(b"MSH|a"))

    assert decoder.stray_bytes == 4


def test_stray_byte_count_does_not_depend_on_how_reads_are_split() -> None:
    whole, split = FrameDecoder(max_size=1024), FrameDecoder(max_size=1024)
    data = b"ab\r\ncd" + encode(b"MSH|a")

    whole.feed(data)
    for i in range(len(data)):
        split.feed(data[i : i + 1])

    assert whole.stray_bytes == split.stray_bytes == 4


def test_stray_end_block_outside_a_frame_is_counted_not_decoded() -> None:
    decoder = FrameDecoder(max_size=1024)

    assert decoder.feed(FS + CR + encode(b"MSH|a")) == [Frame(b"MSH|a")]
    assert decoder.stray_bytes == 1


def test_missing_carriage_return_after_end_block_is_tolerated() -> None:
    decoder = FrameDecoder(max_size=1024)

    events = decoder.feed(VT + b"MSH|a" + FS + VT + b"MSH|b" + FS)

    assert events == [Frame(b"MSH|a"), Frame(b"MSH|b")]
    assert decoder.stray_bytes == 0
    assert decoder.abandoned_frames == 0


def test_new_start_block_inside_an_unfinished_frame_reports_it_as_truncated() -> None:
    decoder = FrameDecoder(max_size=1024)

    events = decoder.feed(VT + b"MSH|cut short" + encode(b"MSH|b"))

    assert events == [TruncatedFrame(b"MSH|cut short", 13), Frame(b"MSH|b")]
    assert decoder.abandoned_frames == 1


def test_new_start_block_in_a_later_read_reports_the_unfinished_frame_as_truncated() -> None:
    decoder = FrameDecoder(max_size=1024)

    assert decoder.feed(VT + b"MSH|cut") == []
    assert decoder.feed(b" short" + encode(b"MSH|b") + encode(b"MSH|c")) == [
        TruncatedFrame(b"MSH|cut short", 13),
        Frame(b"MSH|b"),
        Frame(b"MSH|c"),
    ]
    assert decoder.abandoned_frames == 1


def test_each_of_several_abandoned_frames_in_one_read_is_reported() -> None:
    decoder = FrameDecoder(max_size=1024)

    events = decoder.feed(VT + b"MSH|one" + VT + b"MSH|two" + encode(b"MSH|three"))

    assert events == [
        TruncatedFrame(b"MSH|one", 7),
        TruncatedFrame(b"MSH|two", 7),
        Frame(b"MSH|three"),
    ]
    assert decoder.abandoned_frames == 2


def test_the_frame_in_hand_is_reported_as_pending() -> None:
    decoder = FrameDecoder(max_size=1024)

    assert decoder.pending() is None
    decoder.feed(VT + b"MSH|half")
    assert decoder.pending() == TruncatedFrame(b"MSH|half", 8)
    decoder.feed(FS + CR)
    assert decoder.pending() is None


def test_empty_frame_yields_an_empty_payload() -> None:
    decoder = FrameDecoder(max_size=1024)

    assert decoder.feed(VT + FS + CR) == [Frame(b"")]


def test_frame_of_exactly_the_limit_is_not_oversize() -> None:
    payload = b"x" * 100

    assert FrameDecoder(max_size=100).feed(encode(payload)) == [Frame(payload)]


def test_oversize_frame_arriving_whole_is_reported_and_next_frame_decoded() -> None:
    decoder = FrameDecoder(max_size=100)
    big = b"MSH|" + b"x" * 200

    events = decoder.feed(encode(big) + encode(b"MSH|next"))

    assert events == [OversizeFrame(head=big, size=len(big)), Frame(b"MSH|next")]
    assert decoder.abandoned_frames == 0
    assert not decoder.in_frame


def test_oversize_frame_detected_mid_stream_is_reported_with_its_true_size() -> None:
    decoder = FrameDecoder(max_size=100)
    big = b"MSH|" + b"x" * 1000
    data = encode(big) + encode(b"MSH|next")

    events = feed_all(decoder, *(data[i : i + 64] for i in range(0, len(data), 64)))

    assert len(events) == 2
    oversize, following = events
    assert isinstance(oversize, OversizeFrame)
    assert oversize.size == len(big)
    assert big.startswith(oversize.head)
    assert oversize.head.startswith(b"MSH|")
    assert following == Frame(b"MSH|next")
    assert not decoder.in_frame


def test_oversize_frame_split_byte_by_byte_keeps_the_stream_in_step() -> None:
    decoder = FrameDecoder(max_size=10)
    big = b"MSH|" + b"y" * 50
    data = encode(b"MSH|a") + encode(big) + encode(b"MSH|b")

    events = feed_all(decoder, *(data[i : i + 1] for i in range(len(data))))

    assert events[0] == Frame(b"MSH|a")
    assert isinstance(events[1], OversizeFrame)
    assert events[1].size == len(big)
    assert events[2:] == [Frame(b"MSH|b")]


def test_oversize_head_is_cut_to_the_head_limit_when_arriving_whole() -> None:
    decoder = FrameDecoder(max_size=1024)
    big = b"MSH|" + b"z" * (OVERSIZE_HEAD_BYTES + 5000)

    (event,) = decoder.feed(encode(big))

    assert event == OversizeFrame(head=big[:OVERSIZE_HEAD_BYTES], size=len(big))


def test_oversize_head_is_cut_to_the_head_limit_when_detected_mid_stream() -> None:
    decoder = FrameDecoder(max_size=1024)
    big = b"MSH|" + b"z" * (OVERSIZE_HEAD_BYTES * 2)

    assert decoder.feed(VT + big[: OVERSIZE_HEAD_BYTES + 10]) == []
    assert decoder.in_frame
    events = decoder.feed(big[OVERSIZE_HEAD_BYTES + 10 :] + FS + CR + encode(b"MSH|ok"))

    assert events == [
        OversizeFrame(head=big[:OVERSIZE_HEAD_BYTES], size=len(big)),
        Frame(b"MSH|ok"),
    ]


def test_frame_after_an_abandoned_oversize_frame_gets_its_own_event() -> None:
    decoder = FrameDecoder(max_size=100)
    events = decoder.feed(b"\x0b" + b"x" * 500)  # oversize, and never ended
    events += decoder.feed(b"\x0bMSH|next\x1c\r")
    assert [type(e).__name__ for e in events] == ["OversizeFrame", "Frame"]
    assert events[0].size == 500
    assert events[1].payload == b"MSH|next"
