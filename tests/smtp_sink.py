"""A real SMTP server on loopback for ticketd's e-mail tests (tests/api/email.rs).

    python3 tests/smtp_sink.py PORT DIR [--hang]

Listens on 127.0.0.1:PORT (0: any free port) with aiosmtpd and prints
"ready <port>" once it accepts connections. Every message it receives is
parsed with Python's own e-mail package (a MIME reader independent of
lettre, which wrote it) and written to DIR as one JSON file, NNNNNN.json,
atomically: envelope sender and recipients, the headers the tests check,
and the decoded text/plain and text/html parts.

With --hang it accepts connections and never says a word (no greeting): an
SMTP server that hangs, for the timeout test and the benchmark.
"""
import asyncio
import email
import email.policy
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)

        def part(kind):
            body = message.get_body(preferencelist=(kind,))
            return None if body is None else body.get_content()

        document = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "from": str(message["from"]),
            "to": str(message["to"]),
            "subject": str(message["subject"]),
            "message_id": str(message["message-id"]),
            "content_type": message.get_content_type(),
            "text": part("plain"),
            "html": part("html"),
        }
        self.count += 1
        name = os.path.join(self.directory, "%06d.json" % self.count)
        with open(name + ".tmp", "w", encoding="utf-8") as f:
            json.dump(document, f, ensure_ascii=False)
        os.replace(name + ".tmp", name)
        return "250 OK"


async def hold(reader, writer):
    # Never greet: the client waits until its own timeout.
    await asyncio.sleep(3600)


async def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    loop = asyncio.get_running_loop()
    if "--hang" in sys.argv[3:]:
        server = await asyncio.start_server(hold, "127.0.0.1", port)
    else:
        sink = Sink(directory)
        server = await loop.create_server(lambda: SMTP(sink), "127.0.0.1", port)
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
