/** This package's version (package.json), for the gateway's state and Home Assistant's `origin`. */

import { readFileSync } from 'node:fs';
import * as path from 'node:path';

export const VERSION: string = (() => {
  try {
    // dist/settings/version.js and src/settings/version.ts are both two levels below the package root.
    return JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')).version;
  } catch {
    return 'unknown';
  }
})();
