"""A lean asyncio head-end for load tests: many concurrent sessions in one event loop.

Each session: TCP connect, AARQ with HLS-GMAC (mechanism 5) and a ciphered xDLMS
InitiateRequest, the AARE, pass 3/4 by reply_to_HLS_authentication (0-0:40.0.0 method 1),
ciphered GETs (general-glo-ciphering, security control 0x30), RLRQ. It is built on the twin's own
sans-IO codecs, so it checks no conformance (the independent clients of the tests do that): it
exists to load a fleet without the client becoming the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import struct
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin.p3.dlms.acse import Aare, Aarq, AssociationResult, Rlrq
from twin.p3.dlms.action import ActionRequestNormal, ActionResponseNormal, parse_action_response
from twin.p3.dlms.cosem import ActionResult, AttributeRef, DataAccessResult
from twin.p3.dlms.get import GetRequestNormal, GetResponseNormal, parse_get_response
from twin.p3.dlms.initiate import Conformance, InitiateRequest
from twin.p3.dlms.security import (
    SC_AUTH_ENC,
    CipheredApdu,
    SecurityKeys,
    hls_reply,
    protect,
    unprotect,
)
from twin.p3.objects.base import obis_bytes

LN_WITH_CIPHERING = 3  # application context: logical name referencing with ciphering
HLS_GMAC = 5
GLO_INITIATE_REQUEST = 0x21
GENERAL_GLO = 0xDB
CLIENT_TITLE = b"LOADGEN1"
MANAGEMENT_CLIENT, SERVER = 1, 1
HLS_REPLY = AttributeRef(15, obis_bytes("0-0:40.0.0"), 1)
CONFORMANCE = (
    Conformance.GET
    | Conformance.SET
    | Conformance.ACTION
    | Conformance.SELECTIVE_ACCESS
    | Conformance.BLOCK_TRANSFER_WITH_GET
)


class SessionError(RuntimeError):
    """The meter refused or broke the session."""


class LeanAsyncSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        keys: SecurityKeys,
        ic: int,
    ) -> None:
        self.reader, self.writer, self.keys, self.ic = reader, writer, keys, ic
        self.server_title = b""
        self.last_server_ic = 0

    @classmethod
    async def open(cls, host: str, port: int, guek: bytes, gak: bytes, ic: int) -> LeanAsyncSession:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, SecurityKeys(guek, gak), ic)

    async def _send(self, apdu: bytes) -> None:
        self.writer.write(struct.pack(">HHHH", 1, MANAGEMENT_CLIENT, SERVER, len(apdu)) + apdu)
        await self.writer.drain()

    async def _receive(self) -> bytes:
        header = await self.reader.readexactly(8)
        (length,) = struct.unpack(">H", header[6:])
        return await self.reader.readexactly(length)

    def _next_ic(self) -> int:
        self.ic += 1
        return self.ic - 1

    async def associate(self) -> None:
        ic = self._next_ic()
        initiate = InitiateRequest(CONFORMANCE, 1024).to_bytes()
        text = protect(self.keys, CLIENT_TITLE, ic, SC_AUTH_ENC, initiate)
        info = CipheredApdu(GLO_INITIATE_REQUEST, SC_AUTH_ENC, ic, text).to_bytes()
        challenge = os.urandom(16)  # CtoS
        await self._send(
            Aarq(LN_WITH_CIPHERING, CLIENT_TITLE, HLS_GMAC, challenge, info).to_bytes()
        )
        aare = Aare.from_bytes(await self._receive())
        if aare.result is not AssociationResult.ACCEPTED:
            raise SessionError(f"AARE {aare.result.name} (diagnostic {aare.diagnostic})")
        if aare.responding_ap_title is None or aare.responding_authentication_value is None:
            raise SessionError("AARE without system title or challenge")
        self.server_title = aare.responding_ap_title
        stoc = aare.responding_authentication_value
        reply = hls_reply(self.keys, CLIENT_TITLE, self._next_ic(), stoc)
        parameters = bytes([0x09, len(reply)]) + reply  # octet-string f(StoC)
        answer = parse_action_response(
            await self.exchange(ActionRequestNormal(0xC1, HLS_REPLY, parameters).to_bytes())
        )
        if (
            not isinstance(answer, ActionResponseNormal)
            or answer.result is not ActionResult.SUCCESS
        ):
            raise SessionError(f"HLS pass 3/4 refused: {answer}")

    async def exchange(self, plain: bytes) -> bytes:
        ic = self._next_ic()
        text = protect(self.keys, CLIENT_TITLE, ic, SC_AUTH_ENC, plain)
        await self._send(CipheredApdu(GENERAL_GLO, SC_AUTH_ENC, ic, text, CLIENT_TITLE).to_bytes())
        reply = CipheredApdu.from_bytes(await self._receive())
        if reply.invocation_counter <= self.last_server_ic:
            raise SessionError("the meter's invocation counter did not increase")
        self.last_server_ic = reply.invocation_counter
        return unprotect(
            self.keys, self.server_title, reply.invocation_counter, SC_AUTH_ENC, reply.text
        )

    async def get(self, ref: AttributeRef) -> bytes:
        response = parse_get_response(await self.exchange(GetRequestNormal(0xC1, ref).to_bytes()))
        if not isinstance(response, GetResponseNormal) or isinstance(
            response.result, DataAccessResult
        ):
            raise SessionError(f"GET {ref}: {response}")
        return response.result

    async def release(self) -> None:
        try:
            await self._send(Rlrq(reason=0).to_bytes())
            await self._receive()
        finally:
            self.writer.close()
            await self.writer.wait_closed()


ENERGY = AttributeRef(3, obis_bytes("1-0:1.8.1"), 2)


@dataclass
class LoadStats:
    latencies: list[float] = field(default_factory=list)
    sessions: int = 0
    errors: list[str] = field(default_factory=list)


async def _client(rows: list[dict[str, Any]], gets: int, until: float, stats: LoadStats) -> None:
    """Sessions one after another over `rows` (its own meters: a meter takes one at a time)."""
    index = 0
    while time.monotonic() < until:
        row = rows[index % len(rows)]
        index += 1
        host, _, port = row["p3"].removeprefix("tcp://").rpartition(":")
        counter = 1_000_000 + random.randrange(1_000_000) * 100  # above any earlier session's
        session = None
        try:
            session = await LeanAsyncSession.open(
                host.strip("[]"),
                int(port),
                bytes.fromhex(row["guek"]),
                bytes.fromhex(row["gak"]),
                counter,
            )
            await session.associate()
            for _ in range(gets):
                t = time.perf_counter()
                await session.get(ENERGY)
                stats.latencies.append(time.perf_counter() - t)
            await session.release()
            stats.sessions += 1
        except (OSError, asyncio.IncompleteReadError, SessionError, ValueError) as exc:
            stats.errors.append(f"{row['meter']}: {type(exc).__name__}: {exc}")
            if session is not None:
                # A failed session's connection is dropped, not left open: it would hold the
                # meter's one slot, and this client's next visit would be refused (a reset).
                session.writer.transport.abort()


async def run_load(
    rows: list[dict[str, Any]], clients: int, gets: int, seconds: float
) -> dict[str, Any]:
    stats = LoadStats()
    until = time.monotonic() + seconds
    cpu0, t0 = time.process_time(), time.monotonic()
    await asyncio.gather(*(_client(rows[i::clients], gets, until, stats) for i in range(clients)))
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    lat = sorted(stats.latencies)
    return {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "gets": len(lat),
        "sessions": stats.sessions,
        "gets_per_s": round(len(lat) / elapsed),
        "sessions_per_s": round(stats.sessions / elapsed, 1),
        "get_median_ms": round(statistics.median(lat) * 1000, 2) if lat else None,
        "get_p99_ms": round(lat[max(0, int(len(lat) * 0.99) - 1)] * 1000, 2) if lat else None,
        "errors": len(stats.errors),
        "first_errors": stats.errors[:3],
        "client_cpu_percent": round(cpu / elapsed * 100),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="lean asyncio head-end load on a fleet")
    parser.add_argument("--inventory", type=Path, required=True, help="`fleet inventory` JSON")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--gets", type=int, default=20, help="GETs per session")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    rows = json.loads(args.inventory.read_text())
    print(json.dumps(asyncio.run(run_load(rows, args.clients, args.gets, args.seconds))))


if __name__ == "__main__":
    main()
