/** One timed span of GPU work, in ms from the start of the step. */
export interface TraceSpan {
  name: string;
  startMs: number;
  durMs: number;
  /** Extra fields shown in the viewer's details pane. */
  args?: Record<string, string | number>;
}

/**
 * A Chrome trace (the JSON Object Format that chrome://tracing and Perfetto open): one complete
 * ("X") event per span, timestamps in microseconds, all on one GPU track.
 */
export function chromeTrace(spans: readonly TraceSpan[], process = 'webgpu-train', thread = 'GPU queue'): string {
  const events: object[] = [
    { name: 'process_name', ph: 'M', pid: 1, tid: 1, args: { name: process } },
    { name: 'thread_name', ph: 'M', pid: 1, tid: 1, args: { name: thread } },
  ];
  for (const s of spans) {
    events.push({ name: s.name, cat: 'gpu', ph: 'X', ts: +(s.startMs * 1000).toFixed(3), dur: +(s.durMs * 1000).toFixed(3), pid: 1, tid: 1, args: s.args ?? {} });
  }
  return JSON.stringify({ traceEvents: events, displayTimeUnit: 'ms' }, null, 1);
}
