import { commitBatch, commitPlan } from './src/materializer/commit.js';
import { MemoryState } from './src/materializer/memory-state.js';
import { createRegistry } from './src/views/registry.js';
import { userInformation } from './src/views/user-information.js';
import { changes, prng } from './bench/lib/records.js';
const registry = process.env.ONLY_UI ? createRegistry([userInformation]) : createRegistry();
const plan = commitPlan(registry);
const state = new MemoryState(registry);
const random = prng(13);
const records = Number(process.argv[2] ?? 2_000_000), users = 100_000, BATCH = Number(process.argv[3] ?? 5000);
let cpu = 0; let seq = 0n;
for (let from = 0; from < records; from += BATCH) {
  const batch = changes(from, Math.min(records, from + BATCH), users, random);
  const c0 = process.cpuUsage();
  commitBatch(state, plan, batch, ++seq, Date.now());
  const c = process.cpuUsage(c0); cpu += (c.user + c.system) / 1000;
}
console.log(`${process.env.ONLY_UI ? 'UI only' : 'all views'}: ${records} records, batch ${BATCH}: ${(records / (cpu / 1000)).toFixed(0)} records per CPU-second`);
