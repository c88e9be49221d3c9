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
  // A closed stdout or stderr (the terminal or the pipe gone) ends the logging, never the service: boards go on.
  const open = { stdout: true, stderr: true };
  process.stdout.on('error', () => (open.stdout = false));
  process.stderr.on('error', () => (open.stderr = false));
  for (const name of Object.keys(RANK) as LogLevel[]) {
    log[name] = (text: string) => {
      if (RANK[name] > RANK[log.level]) return;
      const stream = name === 'error' ? 'stderr' : 'stdout';
      if (!open[stream]) return;
      const line = `${new Date().toISOString()} [${name}] ${text}\n`;
      try {
        process[stream].write(line);
      } catch {
        open[stream] = false;
      }
    };
  }
  return log;
}
