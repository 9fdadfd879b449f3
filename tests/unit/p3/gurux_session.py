"""A gurux-dlms client session over any byte transport (in memory or a socket)."""

from __future__ import annotations

from typing import Any

from gurux_dlms import GXByteBuffer, GXReplyData


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
