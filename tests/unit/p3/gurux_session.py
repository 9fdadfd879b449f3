"""A gurux-dlms client session over any byte transport (in memory or a socket)."""

from __future__ import annotations

from typing import Any

from gurux_dlms import GXByteBuffer, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.secure import GXDLMSSecureClient

from tests.unit.p3.helpers import CLIENT_TITLE


def management_client(
    guek: bytes,
    gak: bytes,
    *,
    authentication: Authentication = Authentication.HIGH_GMAC,
    secret: bytes | None = None,
    invocation_counter: int = 10,
    max_pdu: int = 1024,
) -> Any:
    """gurux's GXDLMSSecureClient as management client 1 (suite 0, authenticated and
    encrypted); HLS 3/4 (HIGH_MD5 / HIGH_SHA1) use `secret`, HLS 5 the keys."""
    client = GXDLMSSecureClient(True, 1, 1, authentication, secret, InterfaceType.WRAPPER)
    client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
    client.ciphering.systemTitle = CLIENT_TITLE
    client.ciphering.blockCipherKey = guek
    client.ciphering.authenticationKey = gak
    client.ciphering.invocationCounter = invocation_counter
    client.maxReceivePDUSize = max_pdu
    return client


class GuruxSession:
    """Drives a GXDLMSSecureClient; a subclass moves one request's bytes to the meter."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def _transfer(self, request: bytes) -> bytes:
        """Send one request, return the meter's answer (raise ConnectionResetError if none)."""
        raise NotImplementedError

    def run(self, frames: list[Any]) -> Any:
        reply = GXReplyData()
        for frame in frames:
            reply.clear()
            self._exchange(frame, reply)
        while reply.isMoreData():
            self._exchange(self.client.receiverReady(reply), reply)
        return reply

    def _exchange(self, frame: Any, reply: Any) -> None:
        answer = self._transfer(bytes(frame))
        if not self.client.getData(GXByteBuffer(answer), reply, GXReplyData()):
            raise AssertionError("gurux could not parse the answer")

    def associate(self) -> None:
        self.client.parseAareResponse(self.run(self.client.aarqRequest()).data)
        if self.client.getIsAuthenticationRequired():
            reply = self.run(self.client.getApplicationAssociationRequest())
            self.client.parseApplicationAssociationResponse(reply.data)

    def read(self, item: Any, attribute: int) -> Any:
        reply = self.run(self.client.read(item, attribute))
        self.client.updateValue(item, attribute, reply.value)
        return reply.value
