import { performance } from "node:perf_hooks";
import t from "tap";
import { GroupCommitWriter } from "../src/chatlog/group-commit.js";
import { LogDeadlineError, LogQueueFullError } from "../src/chatlog/log-errors.js";

// The group-commit queue's bounds, on a fake batch writer that holds each batch until told to finish it.
interface HeldBatch {
  items: number[];
  deadline: number;
  finish: () => void;
}

function heldWriter(maxBatch: number, maxInFlight: number, limits: { maxQueued: number; deadlineMs: number }) {
  const batches: HeldBatch[] = [];
  const started: (() => void)[] = [];
  const writer = new GroupCommitWriter<number, number>(
    (items, deadline) =>
      new Promise((resolve) => {
        batches.push({ items, deadline, finish: () => resolve(items.map((i) => i * 10)) });
        for (const wake of started.splice(0)) wake();
      }),
    maxBatch,
    undefined,
    maxInFlight,
    limits,
  );
  /** Resolves once `n` batches have been handed to the writer (event-driven). */
  const batchesStarted = (n: number) =>
    new Promise<void>((resolve) => {
      const check = () => (batches.length >= n ? resolve() : started.push(check));
      check();
    });
  return { writer, batches, batchesStarted };
}

t.test("a full queue refuses at once with a typed error; queued rows are still written", async (t) => {
  const { writer, batches, batchesStarted } = heldWriter(2, 1, { maxQueued: 3, deadlineMs: 60_000 });
  const first = writer.write(1);
  await batchesStarted(1);
  const queued = [2, 3, 4].map((i) => writer.write(i));
  t.equal(writer.queued, 3, "three rows wait behind the batch in flight");
  const refused = writer.write(5);
  await t.rejects(refused, LogQueueFullError, "the fourth waiting row is refused");
  const err = await refused.catch((e: unknown) => e);
  t.equal((err as LogQueueFullError).retryAfterSeconds, 1);
  t.equal(writer.queued, 3, "the refused row did not join the queue");

  batches[0]?.finish();
  t.equal(await first, 10);
  await batchesStarted(2);
  batches[1]?.finish();
  await batchesStarted(3);
  batches[2]?.finish();
  t.same(await Promise.all(queued), [20, 30, 40]);
  t.same(
    batches.map((b) => b.items),
    [[1], [2, 3], [4]],
    "the refused row was never handed to the database",
  );
  const again = writer.write(6);
  await batchesStarted(4);
  batches[3]?.finish();
  t.equal(await again, 60, "room again once the queue drained");
  await writer.close();
});

t.test("rows still queued at their deadline are refused and never written", async (t) => {
  const { writer, batches, batchesStarted } = heldWriter(10, 1, { maxQueued: 100, deadlineMs: 150 });
  const first = writer.write(1);
  await batchesStarted(1);
  const late = [2, 3].map((i) => writer.write(i));
  for (const p of late) await t.rejects(p, LogDeadlineError, "refused once its deadline passed");
  const err = await late[0]?.catch((e: unknown) => e);
  t.equal((err as LogDeadlineError).phase, "queued");
  t.equal(writer.queued, 0, "dropped from the queue");

  // The batch in flight is the batch writer's to settle (it may be committing): not refused by the queue.
  batches[0]?.finish();
  t.equal(await first, 10, "the row in flight got its result");
  const after = writer.write(4);
  await batchesStarted(2);
  batches[1]?.finish();
  t.equal(await after, 40, "a later row is written");
  t.same(
    batches.map((b) => b.items),
    [[1], [4]],
    "rows 2 and 3 never reached the database",
  );
  await writer.close();
});

t.test("a batch carries its oldest row's deadline", async (t) => {
  const { writer, batches, batchesStarted } = heldWriter(10, 1, { maxQueued: 100, deadlineMs: 5000 });
  const before = performance.now();
  const rows = [1, 2, 3].map((i) => writer.write(i));
  const after = performance.now();
  await batchesStarted(1);
  const deadline = batches[0]?.deadline ?? Number.NaN;
  t.same(batches[0]?.items, [1, 2, 3]);
  t.ok(deadline >= before + 5000 && deadline <= after + 5000, "deadline = the first row's write time + deadlineMs");
  batches[0]?.finish();
  await Promise.all(rows);
  await writer.close();
});

t.test("close waits for queued rows to be written or to expire", async (t) => {
  const { writer, batches, batchesStarted } = heldWriter(1, 1, { maxQueued: 100, deadlineMs: 150 });
  const first = writer.write(1);
  await batchesStarted(1);
  const late = writer.write(2);
  const closed = writer.close();
  await t.rejects(late, LogDeadlineError);
  batches[0]?.finish();
  await first;
  await closed;
  t.equal(batches.length, 1, "the expired row was not written on close");
});
