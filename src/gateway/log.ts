/** The gateway's log: one line per event on stdout (errors on stderr), from `--log-level` up. */

import type { LogLevel } from './options';

const RANK: Record<LogLevel, number> = { error: 0, warn: 1, info: 2, debug: 3 };

export interface Log {
  error(text: string): void;
  warn(text: string): void;
  info(text: string): void;
  debug(text: string): void;
  level: LogLevel;
}

export function consoleLog(level: LogLevel): Log {
  const log: Log = { level } as Log;
  for (const name of Object.keys(RANK) as LogLevel[]) {
    log[name] = (text: string) => {
      if (RANK[name] > RANK[log.level]) return;
      const line = `${new Date().toISOString()} [${name}] ${text}\n`;
      (name === 'error' ? process.stderr : process.stdout).write(line);
    };
  }
  return log;
}
