import { Generator } from "../load/generator.js";
import { Phase, Tracker } from "../load/tracker.js";
import { exitWithParent, requireEnv } from "./child-util.js";

// The flood scenario's spammer, in a process of its own so that its 5,000 posts/s do not share an
// event loop with the process that measures the normal senders' latency. One sender, one room; on
// each stdin line "flood <rate> <ms> <n>" it posts at <rate>/s for <ms> ms (open loop) and answers
// one JSON line with what it got. Texts start with "spam " so the presenters' tracker can tell them.

const generator = new Generator(
  {
    baseUrls: [requireEnv("SPAM_BASE_URL")],
    senderTokens: [requireEnv("SPAM_TOKEN")],
    rooms: [Number(requireEnv("SPAM_ROOM"))],
    connections: 64,
    textPrefix: "spam ",
  },
  new Tracker(),
);

exitWithParent(() => generator.close());

let buffer = "";
let queue = Promise.resolve();
process.stdin.on("data", (chunk: Buffer) => {
  buffer += chunk.toString();
  for (let nl = buffer.indexOf("\n"); nl !== -1; nl = buffer.indexOf("\n")) {
    const line = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    const [command, rate, ms, n] = line.split(" ");
    if (command !== "flood") continue;
    queue = queue.then(() => flood(Number(rate), Number(ms), Number(n)));
  }
});

async function flood(rate: number, ms: number, n: number): Promise<void> {
  const phase = new Phase(`spam-${n}`, "open");
  await generator.openLoop(phase, rate, ms);
  const done = {
    msg: "flood done",
    n,
    issued: phase.issued,
    ok: phase.ok,
    failures: phase.failures,
    samples: phase.failureSamples.slice(0, 2),
    generatorDropped: phase.generatorDropped,
  };
  process.stdout.write(`${JSON.stringify(done)}\n`);
}

process.stdout.write(`${JSON.stringify({ msg: "spammer ready" })}\n`);
