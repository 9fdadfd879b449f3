"""A minimal ciphered GET client for measurements and bulk reads.

The association (AARQ, HLS-GMAC) is made by the independent dlms-cosem client; afterwards
this class drives the same socket with pre-built general-glo-ciphering GET requests, so the
figures measure the meter and not dlms-cosem's pure-Python APDU layer (which also prints
every APDU). It follows the P3 §3.2.3 frame-counter rule: +1 per frame.
"""

from __future__ import annotations

import socket
from typing import Any

from tests.unit.p3.tcp_peers import recv_pdu, wrap
from twin.p3.dlms.action import ActionRequestNormal, ActionResponseNormal, parse_action_response
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult, SelectiveAccess
from twin.p3.dlms.get import (
    GetRequestNext,
    GetRequestNormal,
    GetResponseNormal,
    GetResponseWithBlock,
    parse_get_response,
)
from twin.p3.dlms.security import SC_AUTH_ENC, CipheredApdu, SecurityKeys, protect, unprotect
from twin.p3.dlms.set_action import (
    DataBlock,
    SetRequestBlock,
    SetRequestFirstBlock,
    SetRequestNormal,
    SetResponseBlock,
    SetResponseLastBlock,
    SetResponseNormal,
    parse_set_response,
)


class LeanSession:
    def __init__(self, client: Any, guek: bytes, gak: bytes) -> None:
        """Take over an associated dlms-cosem `DlmsClient` (its socket and counters)."""
        connection = client.dlms_connection
        self.sock: socket.socket = client.io_interface.tcp_socket
        self.keys = SecurityKeys(guek, gak)
        self.title: bytes = connection.client_system_title
        self.server_title: bytes = connection.meter_system_title
        self.ic: int = connection.client_invocation_counter
        self.last_server_ic = 0
        self.client = client

    def hand_back(self) -> None:
        """Let dlms-cosem continue (e.g. to release) with the counter we reached."""
        self.client.dlms_connection.client_invocation_counter = self.ic
        self.client.dlms_connection.meter_invocation_counter = self.last_server_ic

    def exchange(self, plain: bytes) -> bytes:
        text = protect(self.keys, self.title, self.ic, SC_AUTH_ENC, plain)
        request = CipheredApdu(0xDB, SC_AUTH_ENC, self.ic, text, self.title)
        self.ic += 1
        self.sock.sendall(wrap(request.to_bytes()))
        reply = CipheredApdu.from_bytes(recv_pdu(self.sock)[8:])
        if reply.invocation_counter <= self.last_server_ic:
            raise AssertionError("meter invocation counter did not increase")
        self.last_server_ic = reply.invocation_counter
        return unprotect(
            self.keys, self.server_title, reply.invocation_counter, SC_AUTH_ENC, reply.text
        )

    def get(self, ref: AttributeRef, access: SelectiveAccess | None = None) -> bytes:
        """The encoded Data of one attribute, following GET-with-block to the end."""
        response = parse_get_response(self.exchange(GetRequestNormal(0xC1, ref, access).to_bytes()))
        if isinstance(response, GetResponseNormal):
            if isinstance(response.result, DataAccessResult):
                raise AssertionError(f"{ref}: {response.result.name}")
            return response.result
        data = b""
        while isinstance(response, GetResponseWithBlock):
            if isinstance(response.raw, DataAccessResult):
                raise AssertionError(f"{ref}: block {response.raw.name}")
            data += response.raw
            if response.last_block:
                return data
            following = GetRequestNext(0xC1, response.block_number).to_bytes()
            response = parse_get_response(self.exchange(following))
        raise AssertionError(f"unexpected answer {response}")

    def set(self, ref: AttributeRef, value: bytes, block: int = 800) -> DataAccessResult:
        """SET, with block transfer (Green Book §9.4.6.3) when the value is long: the P3
        server accepts PDUs of at most 1024 bytes (P3 §2.1.3)."""
        if len(value) <= block:
            answer = parse_set_response(
                self.exchange(SetRequestNormal(0xC1, ref, value).to_bytes())
            )
            assert isinstance(answer, SetResponseNormal), answer
            return answer.result
        chunks = [value[i : i + block] for i in range(0, len(value), block)]
        first = DataBlock(len(chunks) == 1, 1, chunks[0])
        answer = parse_set_response(
            self.exchange(SetRequestFirstBlock(0xC1, ref, first).to_bytes())
        )
        for number, chunk in enumerate(chunks[1:], start=2):
            assert isinstance(answer, SetResponseBlock), answer
            following = DataBlock(number == len(chunks), number, chunk)
            answer = parse_set_response(self.exchange(SetRequestBlock(0xC1, following).to_bytes()))
        assert isinstance(answer, SetResponseLastBlock), answer
        return answer.result

    def action(self, ref: AttributeRef, parameters: bytes | None) -> ActionResult:
        request = ActionRequestNormal(0xC1, ref, parameters).to_bytes()
        answer = parse_action_response(self.exchange(request))
        assert isinstance(answer, ActionResponseNormal), answer
        return answer.result
