/**
 * The `tcpmq-gateway` command: settings from flags, environment and file;
 * SIGTERM and SIGINT stop gracefully (persist saved, MQTT state offline, exit
 * 0); SIGHUP re-reads the config file and applies it live, as a deploy does;
 * SIGUSR2 upgrades: the broker goes on in a new process from the code on disk
 * now, with every board's connection (holder.ts). Where a process cannot hand
 * a socket to another (Windows), with TLS (a TLS session lives in the process
 * that did its handshake) or with --single-process, the broker runs in this
 * process, as before. A bad setting is one line naming it and exit code 2,
 * never a stack trace.
 */

import { errorText } from '../events/safe-emitter';
import { SettingError } from '../settings/schema';
import { VERSION } from '../settings/version';
import { Gateway } from './gateway';
import { Holder } from './holder';
import { consoleLog, type Log } from './log';
import { helpText, parseArgs, resolveOptions, type Command, type GatewayOptions } from './options';

/** Exit code of a bad setting (as a shell's usage error). */
const USAGE = 2;
/** A stop that takes longer than this exits anyway. */
const STOP_WITHIN_MS = 2500;
const SINGLE_PROCESS = '--single-process';

export function main(argv: readonly string[]): void {
  const args = argv.filter((arg) => arg !== SINGLE_PROCESS);
  let command;
  let options: GatewayOptions;
  try {
    command = parseArgs(args);
    if (command.help) {
      process.stdout.write(`${helpText()}\n${singleProcessHelp()}\n`);
      return;
    }
    options = resolveOptions(command, process.env);
  } catch (err) {
    process.stderr.write(`tcpmq-gateway: ${errorText(err)}\n`);
    process.exitCode = err instanceof SettingError ? USAGE : 1;
    return;
  }
  const log = consoleLog(options.logLevel);
  // Nothing a board or the network does may end the service: report it and go on.
  process.on('uncaughtException', (err) => log.error(`internal error, carrying on: ${err.stack ?? errorText(err)}`));
  const single =
    args.length < argv.length ||
    process.env.TCPMQ_SINGLE_PROCESS === '1' ||
    process.platform === 'win32' ||
    Boolean(options.tlsCert);
  if (single) runAlone(command, options, log);
  else runHeld(command, args, options, log);
}

function singleProcessHelp(): string {
  return (
    `  ${SINGLE_PROCESS}  the broker in this process: no upgrade (SIGUSR2) that keeps the boards; env TCPMQ_SINGLE_PROCESS=1\n` +
    'SIGUSR2 upgrades: a new process from the code on disk takes over every board connection and the state.'
  );
}

/** The broker in this process. */
function runAlone(cli: Command & { help: false }, options: GatewayOptions, log: Log): void {
  let gateway: Gateway;
  try {
    gateway = new Gateway(options, log);
  } catch (err) {
    // A TLS file that cannot be read, say.
    process.stderr.write(`tcpmq-gateway: ${errorText(err)}\n`);
    process.exitCode = USAGE;
    return;
  }
  log.info(`tcpmq-gateway ${VERSION} "${gateway.name}"`);
  gateway.start().catch((err: unknown) => log.error(errorText(err)));
  onStop(log, () => gateway.stop());
  onReload(cli, log, (next) => gateway.apply(next));
  process.on('SIGUSR2', () => log.warn('SIGUSR2: no upgrade in a single process; restart to upgrade'));
}

/** The broker in a worker process that this one (the holder) hands the boards' connections to. */
function runHeld(cli: Command & { help: false }, args: readonly string[], options: GatewayOptions, log: Log): void {
  const holder = new Holder(options, args, log);
  log.info(`tcpmq-gateway ${VERSION} "${holder.name}" (holder ${process.pid})`);
  holder.start();
  onStop(log, () => holder.stop());
  onReload(cli, log, (next) => holder.reload(next));
  process.on('SIGUSR2', () => holder.upgrade());
}

/** SIGTERM and SIGINT: `stop`, then exit 0, within STOP_WITHIN_MS whatever happens. */
function onStop(log: Log, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    setTimeout(() => process.exit(0), STOP_WITHIN_MS).unref();
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error(errorText(err));
        process.exit(0);
      },
    );
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}

/** SIGHUP: the settings read again and applied; a bad one is logged and changes nothing. */
function onReload(cli: Command & { help: false }, log: Log, apply: (options: GatewayOptions) => void): void {
  process.on('SIGHUP', () => {
    try {
      const next = resolveOptions(cli, process.env);
      log.level = next.logLevel;
      apply(next);
    } catch (err) {
      log.error(`SIGHUP: settings not applied: ${errorText(err)}`);
    }
  });
}
