/** The tfjs backends a run can name (`--backend`), as data: importing this loads none of them. */
export const BACKENDS = ["auto", "tfjs-node-gpu", "webgpu", "tfjs-node", "wasm", "cpu"] as const;
export type BackendChoice = (typeof BACKENDS)[number];
