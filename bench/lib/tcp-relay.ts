// Child process entry: a raw TCP relay (no HTTP at all), the floor of what one more Node.js process on the path costs on this machine.

import net from 'node:net';

const upstream = process.argv[2];
if (!upstream) throw new Error('usage: tcp-relay <upstream url>');
const { hostname, port } = new URL(upstream);

// One upstream connection per client connection, bytes piped both ways: every TCP segment still wakes
// this process and costs a read and a write, as in any proxy, but nothing is parsed or framed.
const server = net.createServer({ noDelay: true }, (client) => {
  const up = net.connect({ host: hostname, port: Number(port), noDelay: true });
  client.pipe(up).pipe(client);
  const close = () => {
    client.destroy();
    up.destroy();
  };
  client.once('close', close).on('error', close);
  up.once('close', close).on('error', close);
});
server.listen(0, '127.0.0.1', () => {
  process.send?.({ url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}` });
});
process.on('disconnect', () => process.exit(0));
