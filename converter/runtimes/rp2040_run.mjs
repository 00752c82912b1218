// Run a pico-sdk .uf2 on an emulated RP2040 (npm rp2040js) and print what it writes to UART0.
//
//   node rp2040_run.mjs <rp2040js package dir> <bootrom.bin> <firmware.uf2> <max cycles>
//
// Called by converter/runtimes/rp2040.py with an argument list. Runs until the self-test's summary
// line (`PASS n/n` or `FAIL ...`) and the line after it (`ARENA used ...`), an `ERROR` line, or
// the cycle limit; then prints `RP2040JS cycles <n> stop <reason>` on stderr. The cycle count is
// rp2040js's own (an emulator estimate, not a board's timing). Exit status: 0 when the summary
// was seen, 3 at the cycle limit, 2 on bad arguments.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const UF2_MAGIC = [0x0a324655, 0x9e5d5157];
const UF2_END = 0x0ab16f30;
const FLASH_BASE = 0x10000000;
const CYCLE_NANOS = 8; // rp2040js's Simulator runs the core at 125 MHz: 8 ns per cycle

function fail(message) {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

// Copy every UF2 block's payload to its flash address (UF2 spec: 512-byte blocks).
function loadUf2(rp2040, data) {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  if (data.length === 0 || data.length % 512) fail('not a UF2 file (size is not a multiple of 512)');
  for (let offset = 0; offset < data.length; offset += 512) {
    const word = (k) => view.getUint32(offset + k, true);
    if (word(0) !== UF2_MAGIC[0] || word(4) !== UF2_MAGIC[1] || word(508) !== UF2_END) {
      fail(`not a UF2 block at byte ${offset}`);
    }
    const address = word(12), size = word(16);
    if (address < FLASH_BASE || size > 476) fail(`UF2 block at byte ${offset} targets 0x${address.toString(16)}`);
    rp2040.flash.set(data.subarray(offset + 32, offset + 32 + size), address - FLASH_BASE);
  }
}

async function main() {
  const [pkg, bootromPath, uf2Path, maxArg] = process.argv.slice(2);
  if (!pkg || !bootromPath || !uf2Path) fail('usage: rp2040_run.mjs <rp2040js dir> <bootrom.bin> <fw.uf2> [max cycles]');
  const maxCycles = Number(maxArg || 2e9);
  const { Simulator, ConsoleLogger, LogLevel } = await import(pathToFileURL(join(pkg, 'dist/esm/index.js')).href);
  const sim = new Simulator();
  const { rp2040, clock } = sim;
  // rp2040js logs unimplemented peripherals and every SEV to stdout, which carries UART0 here.
  rp2040.logger = new ConsoleLogger(LogLevel.Error);
  const rom = readFileSync(bootromPath);
  rp2040.loadBootrom(new Uint32Array(rom.buffer, rom.byteOffset, rom.byteLength / 4));
  loadUf2(rp2040, readFileSync(uf2Path));

  let line = '', stop = null, summarySeen = false;
  rp2040.uart[0].onByte = (byte) => {
    process.stdout.write(String.fromCharCode(byte));
    if (byte !== 10) { line += String.fromCharCode(byte); return; }
    const text = line.trim();
    line = '';
    if (summarySeen) stop = 'selftest';
    else if (/^(PASS|FAIL) \d+\/\d+/.test(text)) summarySeen = true;
    else if (/^ERROR/.test(text)) stop = 'error';
  };
  let breakHit = false;
  rp2040.onBreak = () => { breakHit = true; };

  // The Simulator's own loop, synchronous: idle time (WFE/WFI) jumps to the next timer alarm.
  rp2040.core.PC = FLASH_BASE;
  const core = rp2040.core;
  while (!stop && core.cycles < maxCycles) {
    if (breakHit) { stop = 'breakpoint'; break; }
    if (core.waiting) {
      const nanos = clock.nanosToNextAlarm;
      if (!Number.isFinite(nanos) || nanos <= 0) { stop = 'halted'; break; }
      clock.tick(nanos);
    } else {
      clock.tick(core.executeInstruction() * CYCLE_NANOS);
    }
  }
  if (line) process.stdout.write('\n');
  process.stderr.write(`RP2040JS cycles ${core.cycles} stop ${stop || 'cycle-limit'}\n`);
  process.exit(summarySeen ? 0 : 3);
}

main().catch((error) => fail(error && error.stack ? error.stack : String(error)));
