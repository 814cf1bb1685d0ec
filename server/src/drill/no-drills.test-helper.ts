// For engine tests that never drill: a drill would fail loudly, start-up clean-up does nothing.
import type { DrillDeps } from '../engine.js';

export const NO_DRILLS: DrillDeps = {
  run: () => Promise.reject(new Error('no drills in this test')),
  store: async () => undefined,
  cleanup: async () => undefined,
};
