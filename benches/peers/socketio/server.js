// The Socket.IO 4 peer for side-by-side benchmarks: rooms, broadcast to the
// room, an ack callback, @socket.io/redis-adapter when REDIS_URL is set,
// bufferutil for WebSocket masking. It stores nothing. Each room gets an
// in-memory sequence number (per process) so the load generator can check
// order and loss the same way it does against Switchboard.
//
//   PORT=3000 [REDIS_URL=redis://127.0.0.1:6379] node server.js
const http = require("http");
const fs = require("fs");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 3000);
const seqs = new Map();

// The two figures the load generator reads from /metrics, under the names it
// reads them from Switchboard (CPU to the clock tick, RSS).
function metrics(res) {
  let cpu = 0;
  try {
    const f = fs.readFileSync("/proc/self/stat", "utf8").split(")").pop().trim().split(/\s+/);
    cpu = (Number(f[11]) + Number(f[12])) / 100;
  } catch (_) { /* no /proc */ }
  res.writeHead(200, { "Content-Type": "text/plain" });
  res.end(`switchboard_process_cpu_seconds ${cpu}\nprocess_resident_memory_bytes ${process.memoryUsage().rss}\n`);
}

const server = http.createServer((req, res) => {
  if (req.url === "/metrics") return metrics(res);
  res.writeHead(404);
  res.end();
});
const io = new Server(server, { transports: ["websocket"], serveClient: false });

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    socket.join(room);
    if (typeof ack === "function") ack({ last_seq: seqs.get(room) || 0 });
  });
  socket.on("send", (m, ack) => {
    if (!m || typeof m.room !== "string" || !socket.rooms.has(m.room)) {
      if (typeof ack === "function") ack({ error: "forbidden" });
      return;
    }
    const seq = (seqs.get(m.room) || 0) + 1;
    seqs.set(m.room, seq);
    io.to(m.room).emit("message", { room: m.room, seq, body: m.body, client_msg_id: m.client_msg_id });
    if (typeof ack === "function") ack({ client_msg_id: m.client_msg_id, seq });
  });
});

async function main() {
  if (process.env.REDIS_URL) {
    const { createClient } = require("redis");
    const { createAdapter } = require("@socket.io/redis-adapter");
    const pub = createClient({ url: process.env.REDIS_URL });
    const sub = pub.duplicate();
    await Promise.all([pub.connect(), sub.connect()]);
    io.adapter(createAdapter(pub, sub));
  }
  server.listen(port, "127.0.0.1", () => console.log(`socket.io peer listening on http://127.0.0.1:${port}`));
}
main();
