'use strict';
// Shared by the bulk clients (t1-client, connect-client bulk): wait for the counted sink's reply
// (the byte count it received, then its FIN) and print `result {"bytes","received","ms"}`.

/** Collect the sink's reply on `sock`; print the result line once the sink closes. */
function reportSinkReply(sock, total, t0) {
  let reply = '';
  sock.setEncoding('utf8');
  sock.on('data', (d) => { reply += d; });
  sock.on('end', () => {
    const ms = Number(process.hrtime.bigint() - t0()) / 1e6;
    process.stdout.write(`result ${JSON.stringify({ bytes: total, received: Number(reply.trim()), ms })}\n`);
    sock.destroy();
  });
}

module.exports = { reportSinkReply };
