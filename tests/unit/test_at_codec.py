"""The sans-IO AT codec: whole and byte by byte, URCs mid-response, garbage, timeouts."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.at_codec import (
    AtCodec,
    AtCommandError,
    AtEvent,
    AtGarbageError,
    AtTimeoutError,
    CmeError,
    CmsError,
    FinalKind,
    FinalResult,
    Garbage,
    LocalAtError,
    RemoteAtError,
    Response,
    Unsolicited,
    command_name,
    split_fields,
)
from hardware.at_sms import ListedSms, parse_cmgl, parse_scts
from hardware.ports import PortError

CSQ_WITH_SMS_URC = b'\r\n+CSQ: 20,99\r\n\r\n+CMTI: "SM",3\r\n\r\nOK\r\n'
LIST = 'AT+CMGL="REC UNREAD"'
TS = '"26/11/23,21:00:00+04"'  # 27.005 §3.3.2: local time, +4 quarter hours = UTC+1
# A text-mode listing with AT+CSDH=1 (27.005 §3.4.2): an empty wake-up SMS (<length> 0: no
# text line, only an empty line), a text that looks like a final result code, a phonebook
# <alpha> and a text with commas, and a RING URC between two messages.
CMGL_DETAILED = (
    f'\r\n+CMGL: 1,"REC UNREAD","+3161",,{TS},145,0\r\n\r\n'
    f'+CMGL: 2,"REC UNREAD","+3162",,{TS},145,2\r\nOK\r\n'
    f"\r\nRING\r\n"
    f'+CMGL: 3,"REC UNREAD","+3163","Doe, John",{TS},145,9\r\nhi, there\r\n'
    "\r\nOK\r\n"
).encode()


def run(command: str, reply: bytes, chunk: int = 0) -> list[AtEvent]:
    """Send `command` on a fresh codec and feed `reply` whole (chunk 0) or in chunks."""
    codec = AtCodec()
    assert codec.send(command) == command.encode() + b"\r"
    return feed(codec, reply, chunk)


def feed(codec: AtCodec, data: bytes, chunk: int = 0) -> list[AtEvent]:
    if chunk == 0:
        return codec.receive_data(data)
    events: list[AtEvent] = []
    for start in range(0, len(data), chunk):
        events += codec.receive_data(data[start : start + chunk])
    return events


TRANSCRIPTS = [
    ("AT+CSQ", CSQ_WITH_SMS_URC),
    ("ATE0", b"ATE0\r\r\nOK\r\n"),  # echo of the command itself
    ("AT+CREG?", b'\r\n+CREG: 1,5\r\n\r\nRING\r\n\r\n+CLIP: "+31201234567",145\r\n\r\nOK\r\n'),
    ("AT+CMGR=1", b'\r\n+CMGR: "REC UNREAD","+3161",,"26/11/23,21:00:00+00"\r\nhi\r\n\r\nOK\r\n'),
    ("AT+CGACT=1,1", b"\r\n+CME ERROR: 30\r\n"),
    (LIST, CMGL_DETAILED),
]


@pytest.mark.parametrize(("command", "reply"), TRANSCRIPTS)
@pytest.mark.parametrize("chunk", [1, 2, 7])
def test_byte_by_byte_equals_whole(command: str, reply: bytes, chunk: int) -> None:
    assert run(command, reply, chunk) == run(command, reply)


@settings(max_examples=50, deadline=None)  # deadline: the box may be busy; this is no benchmark
@given(cuts=st.lists(st.integers(min_value=0, max_value=len(CSQ_WITH_SMS_URC)), max_size=10))
def test_any_split_gives_the_same_events(cuts: list[int]) -> None:
    codec = AtCodec()
    codec.send("AT+CSQ")
    points = [0, *sorted(cuts), len(CSQ_WITH_SMS_URC)]
    events: list[AtEvent] = []
    for start, end in itertools.pairwise(points):
        events += codec.receive_data(CSQ_WITH_SMS_URC[start:end])
    assert events == run("AT+CSQ", CSQ_WITH_SMS_URC)


@settings(max_examples=100, deadline=None)
@given(noise=st.binary(max_size=300))
def test_noise_only_ever_gives_events(noise: bytes) -> None:
    """Fuzz invariant: whatever the line brings, receive_data returns events, never raises."""
    codec = AtCodec(max_line=64)
    codec.send("AT+CSQ")
    for event in codec.receive_data(noise):
        assert isinstance(event, Response | Unsolicited | Garbage)


def test_urc_mid_response_is_separated() -> None:
    events = run("AT+CSQ", CSQ_WITH_SMS_URC)
    assert events[0] == Unsolicited("+CMTI", '"SM",3')
    response = events[1]
    assert isinstance(response, Response)
    assert response == Response("AT+CSQ", ("+CSQ: 20,99",), FinalResult(FinalKind.OK, None, "OK"))
    assert response.result.ok
    assert response.info("+CSQ") == ["20,99"]


def test_ring_and_clip_inside_a_response_are_urcs() -> None:
    _, command_reply = TRANSCRIPTS[2]
    events = run("AT+CREG?", command_reply)
    assert [type(e) for e in events] == [Unsolicited, Unsolicited, Response]
    assert events[0] == Unsolicited("RING")
    assert events[1] == Unsolicited("+CLIP", '"+31201234567",145')
    assert isinstance(events[2], Response)
    assert events[2].check() == ("+CREG: 1,5",)


@pytest.mark.parametrize(
    ("urc", "reply"),
    [
        (b"+CREG: 2", b"+CREG: 1,1"),  # n=1
        (b'+CGREG: 5,"00C3","0000A13F"', b'+CGREG: 2,5,"00C3","0000A13F"'),  # n=2
        (b'+CEREG: 1,"00C3","0000A13F",7', b'+CEREG: 2,1,"00C3","0000A13F",7'),
    ],
)
def test_registration_urc_during_its_own_query(urc: bytes, reply: bytes) -> None:
    """A +CREG URC racing AT+CREG? is told apart by form: the reply starts with <n>."""
    command = "AT" + urc.split(b":")[0].decode() + "?"
    events = run(command, b"\r\n" + urc + b"\r\n\r\n" + reply + b"\r\n\r\nOK\r\n")
    assert isinstance(events[0], Unsolicited)
    assert events[0].body == urc.split(b": ")[1].decode()
    assert isinstance(events[1], Response)
    assert events[1].lines == (reply.decode(),)


def test_other_urcs_with_the_pending_commands_name_count_as_response() -> None:
    """Documented limit: by name only, a +CLIP during AT+CLIP? would be read as the reply."""
    events = run("AT+CLIP?", b'\r\n+CLIP: "+3120",145\r\n\r\n+CLIP: 1,1\r\n\r\nOK\r\n')
    assert isinstance(events[0], Response)
    assert len(events[0].lines) == 2


def test_urcs_while_idle() -> None:
    codec = AtCodec()
    assert codec.receive_data(b'\r\nRING\r\n\r\n+CMTI: "SM",1\r\n\r\nSMS Ready\r\n') == [
        Unsolicited("RING"),
        Unsolicited("+CMTI", '"SM",1'),
        Unsolicited("SMS Ready"),
    ]


def test_two_line_cmt_urc_keeps_its_text() -> None:
    codec = AtCodec()
    data = b'\r\n+CMT: "+3161",,"26/11/23,21:00:00+00"\r\nOK\r\n'
    assert codec.receive_data(data) == [
        Unsolicited("+CMT", '"+3161",,"26/11/23,21:00:00+00"', "OK")
    ]


def test_cmt_with_zero_length_has_no_text_line() -> None:
    codec = AtCodec()
    header = b'+CMT: "+3161",,"26/11/23,21:00:00+00",145,4,0,0,"+310",145,0'
    events = codec.receive_data(b"\r\n" + header + b"\r\n\r\nRING\r\n")
    assert [e.name for e in events if isinstance(e, Unsolicited)] == ["+CMT", "RING"]


@pytest.mark.parametrize(
    ("reply", "lines"),
    [
        # AT+CSDH=1: <length> 0 -> no text line; the empty line is skipped, OK is final.
        (b'\r\n+CMGR: "REC UNREAD","+3161",,"x,y",145,4,0,0,"+310",145,0\r\n\r\n\r\nOK\r\n', 1),
        # No <length>: an empty text is recognised by the final result code that follows.
        (b'\r\n+CMGR: "REC UNREAD","+3161",,"x,y"\r\n\r\n\r\nOK\r\n', 1),
    ],
)
def test_empty_sms_text(reply: bytes, lines: int) -> None:
    (response,) = run("AT+CMGR=1", reply)
    assert isinstance(response, Response)
    assert len(response.check()) == lines


@pytest.mark.parametrize("text", ["OK", "RING", '+CMTI: "SM",9', "ERROR"])
def test_sms_text_is_taken_verbatim_with_length(text: str) -> None:
    header = f'+CMGR: "REC UNREAD","+3161",,"x,y",145,4,0,0,"+310",145,{len(text)}'
    (response,) = run("AT+CMGR=1", f"\r\n{header}\r\n{text}\r\n\r\nOK\r\n".encode())
    assert isinstance(response, Response)
    assert response.check() == (header, text)


def test_sms_text_without_length_is_verbatim_unless_final() -> None:
    reply = b'\r\n+CMGR: "REC UNREAD","+3161",,"x,y"\r\nRING\r\n\r\nOK\r\n'
    (response,) = run("AT+CMGR=1", reply)
    assert isinstance(response, Response)
    assert response.check()[1] == "RING"


@pytest.mark.parametrize(
    ("final", "error", "code"),
    [
        (b"ERROR", AtCommandError, None),
        (b"NO CARRIER", AtCommandError, None),
        (b"+CME ERROR: 10", CmeError, 10),
        (b"+CME ERROR: SIM not inserted", CmeError, None),
        (b"+CMS ERROR: 321", CmsError, 321),
    ],
)
def test_error_results_raise_typed_port_errors(
    final: bytes, error: type[AtCommandError], code: int | None
) -> None:
    (response,) = run("AT+CMGR=4", b"\r\n" + final + b"\r\n")
    assert isinstance(response, Response)
    assert not response.result.ok
    with pytest.raises(error) as caught:
        response.check()
    assert isinstance(caught.value, PortError)
    assert caught.value.result.code == code
    assert caught.value.result.text == final.decode()


def test_garbage_inside_a_response_corrupts_it() -> None:
    events = run("AT+CSQ", b"\r\n+CSQ: 2\x00\xff0,99\r\n\r\nOK\r\n")
    assert isinstance(events[0], Garbage)
    response = events[1]
    assert isinstance(response, Response)
    with pytest.raises(AtGarbageError):
        response.check()


def test_garbage_while_idle_is_dropped_and_the_next_command_works() -> None:
    codec = AtCodec()
    events = codec.receive_data(b"\xff\xfe\x00\r\nOK\r\n")
    assert [type(e) for e in events] == [Garbage, Garbage]
    assert events[1] == Garbage(b"OK", "final result code with no command pending")
    codec.send("AT")
    (response,) = codec.receive_data(b"\r\nOK\r\n")
    assert isinstance(response, Response)
    assert response.check() == ()


def test_an_overlong_line_is_dropped_up_to_its_end() -> None:
    codec = AtCodec(max_line=16)
    codec.send("AT+CSQ")
    events = codec.receive_data(b"\r\n" + b"x" * 40)
    events += codec.receive_data(b"yyy\r\n+CSQ: 5,0\r\nOK\r\n")
    assert isinstance(events[0], Garbage)
    assert events[0].reason == "line too long"
    response = events[-1]
    assert isinstance(response, Response)
    assert response.lines == ("+CSQ: 5,0",)
    with pytest.raises(AtGarbageError):
        response.check()


def test_timeout_abandons_the_command() -> None:
    codec = AtCodec()
    codec.send("AT+COPS?")
    assert codec.receive_data(b"\r\n+COPS: 0") == []
    error = codec.expire()
    assert isinstance(error, AtTimeoutError)
    assert isinstance(error, TimeoutError)
    assert isinstance(error, PortError)
    assert codec.pending is None
    # A late answer is garbage, and the next command is not confused by it.
    assert codec.receive_data(b",0\r\n\r\nOK\r\n")[-1] == Garbage(
        b"OK", "final result code with no command pending"
    )
    codec.send("AT+CSQ")
    (response,) = codec.receive_data(b"\r\n+CSQ: 1,2\r\n\r\nOK\r\n")
    assert isinstance(response, Response)
    assert response.result.kind is FinalKind.OK


def test_one_command_at_a_time() -> None:
    codec = AtCodec()
    codec.send("AT")
    with pytest.raises(LocalAtError):
        codec.send("AT+CSQ")


@pytest.mark.parametrize("bad", ["CSQ", "AT+CSQ\rATH", "AT+CSQ=é"])
def test_only_at_command_lines_are_sent(bad: str) -> None:
    with pytest.raises(LocalAtError):
        AtCodec().send(bad)


def test_helpers() -> None:
    assert command_name("AT+CREG?") == "+CREG"
    assert command_name('AT+CGDCONT=1,"IP","x"') == "+CGDCONT"
    assert command_name("ATE0") == "E0"
    assert split_fields('"REC UNREAD","+3161",,"26/11/23,21:00:00+00"') == [
        "REC UNREAD",
        "+3161",
        "",
        "26/11/23,21:00:00+00",
    ]


# -- stored SMS: AT+CMGL (27.005 §3.4.2) ----------------------------------------------------------


def listing(reply: bytes) -> Response:
    events = run(LIST, reply)
    responses = [event for event in events if isinstance(event, Response)]
    assert len(responses) == 1
    return responses[0]


def test_cmgl_listing_with_lengths() -> None:
    events = run(LIST, CMGL_DETAILED)
    assert Unsolicited("RING") in events  # a URC between two messages stays a URC
    response = listing(CMGL_DETAILED)
    sent = datetime(2026, 11, 23, 20, 0, tzinfo=UTC)
    assert parse_cmgl(response.check()) == [
        ListedSms(1, "REC UNREAD", "+3161", "26/11/23,21:00:00+04", ""),
        ListedSms(2, "REC UNREAD", "+3162", "26/11/23,21:00:00+04", "OK"),
        ListedSms(3, "REC UNREAD", "+3163", "26/11/23,21:00:00+04", "hi, there"),
    ]
    assert {sms.sent for sms in parse_cmgl(response.check())} == {sent}


def test_cmgl_listing_without_lengths() -> None:
    """No AT+CSDH=1: an empty text ends at the next header or at the final result code."""
    reply = (
        b'\r\n+CMGL: 1,"REC UNREAD","+3161",,"26/11/23,21:00:00+00"\r\n\r\n'
        b'+CMGL: 2,"REC READ","+3162",,"26/11/23,21:00:00+00"\r\nRING\r\n'
        b'+CMGL: 3,"REC UNREAD","+3163",,"26/11/23,21:00:00+00"\r\n\r\n'
        b"\r\nOK\r\n"
    )
    response = listing(reply)
    assert [(sms.index, sms.status, sms.text) for sms in parse_cmgl(response.check())] == [
        (1, "REC UNREAD", ""),
        (2, "REC READ", "RING"),  # taken as text, not as a URC
        (3, "REC UNREAD", ""),
    ]


def test_cmgl_text_with_length_is_verbatim_even_if_it_looks_like_a_header() -> None:
    text = '+CMGL: 9,"REC READ","x",,""'
    reply = f'\r\n+CMGL: 4,"REC UNREAD","+3161",,{TS},145,{len(text)}\r\n{text}\r\nOK\r\n'
    (sms,) = parse_cmgl(listing(reply.encode()).check())
    assert (sms.index, sms.text) == (4, text)


def test_cmgl_multi_line_text_is_joined() -> None:
    reply = (
        b'\r\n+CMGL: 1,"REC UNREAD","+3161",,"26/11/23,21:00:00+00"\r\nline 1\r\nline 2\r\nOK\r\n'
    )
    (sms,) = parse_cmgl(listing(reply).check())
    assert sms.text == "line 1\nline 2"


def test_cmgl_status_report_entry_has_no_text() -> None:
    """A status report lists 9 fields ending in <st>, which is no <length>: no text follows."""
    report = (
        '+CMGL: 5,"REC UNREAD",6,17,"+3161",145,"26/11/23,21:00:00+00","26/11/23,21:00:05+00",0'
    )
    wakeup = f'+CMGL: 6,"REC UNREAD","+3162",,{TS},145,0'
    response = listing(f"\r\n{report}\r\n{wakeup}\r\n\r\nOK\r\n".encode())
    assert response.check() == (report, wakeup)
    assert [sms.index for sms in parse_cmgl(response.check())] == [5, 6]


def test_empty_cmgl_listing() -> None:
    assert parse_cmgl(listing(b"\r\nOK\r\n").check()) == []


@pytest.mark.parametrize(
    ("final", "error"),
    [(b"ERROR", AtCommandError), (b"+CMS ERROR: 302", CmsError), (b"+CME ERROR: 10", CmeError)],
)
def test_cmgl_refused(final: bytes, error: type[AtCommandError]) -> None:
    response = listing(b"\r\n" + final + b"\r\n")
    with pytest.raises(error):
        response.check()


@pytest.mark.parametrize("header", ['+CMGL: x,"REC UNREAD","+3161"', "+CMGL: 1", "+CMGL:"])
def test_malformed_cmgl_header(header: str) -> None:
    with pytest.raises(RemoteAtError, match="malformed"):
        parse_cmgl([header])


@pytest.mark.parametrize(
    ("scts", "utc"),
    [
        ("26/11/23,21:00:00+00", datetime(2026, 11, 23, 21, 0, tzinfo=UTC)),
        ('"26/11/23,21:00:00+04"', datetime(2026, 11, 23, 20, 0, tzinfo=UTC)),
        ("26/11/23,21:00:00-08", datetime(2026, 11, 23, 23, 0, tzinfo=UTC)),
        ("27/01/01,00:30:00+08", datetime(2026, 12, 31, 22, 30, tzinfo=UTC)),
    ],
)
def test_scts_is_read_in_utc(scts: str, utc: datetime) -> None:
    assert parse_scts(scts) == utc


@pytest.mark.parametrize(
    "scts", ["", "26/11/23,21:00:00", "26/13/23,21:00:00+00", "26/11/23,21:00:00+99", "garbage"]
)
def test_bad_scts_is_unknown(scts: str) -> None:
    assert parse_scts(scts) is None
