/**
 * A UDP socket on Linux libc through Deno's FFI: `recvmmsg` takes every
 * waiting datagram in one system call and `sendmmsg` sends what a batch
 * produced in one more. Deno's own socket costs a promise and an operation
 * per datagram each way; this costs one `poll` on a worker thread per batch,
 * and allocates nothing per datagram but the subarray handed to the caller.
 * On this machine class a plain echo on it answers about twice as many
 * datagrams per second as one on `Deno.listenDatagram`, close to a C echo
 * server's rate and latency tail.
 *
 * Needs `--allow-ffi` (which is full access: FFI code is outside Deno's
 * sandbox), glibc and a little-endian CPU; x86_64 and aarch64 share the
 * struct layouts below.
 *
 * Every buffer libc reads or writes through a stored pointer lives in one
 * ArrayBuffer made at bind time (arrays passed directly are made with
 * `new ArrayBuffer`): V8 keeps small typed arrays' bytes on its heap, where a
 * collection may move them, and a prototype with its buffers in separate
 * arrays got EFAULT from recvmmsg after ~1,600 datagrams.
 *
 * @module
 */

import { formatIp, type IpBytes, parseIp } from "../codec/ip_address.ts";

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_TRUNC = 0x20;
const POLLIN = 1;
const POLLOUT = 4;
const EINTR = 4;
const EAGAIN = 11;

/** How much a socket holds for one `recvmmsg` and one `sendmmsg`. */
export interface LibcSocketSizes {
  /** Datagrams taken per `recvmmsg`. */
  readonly receiveSlots: number;
  /** Bytes per received datagram: a longer one is cut and reported. */
  readonly receiveSlotBytes: number;
  /** Datagrams held for one `sendmmsg`. */
  readonly sendSlots: number;
  /** Bytes those datagrams may take together. */
  readonly sendBytes: number;
}

/** A server's: each slot holds the largest UDP payload, so none is ever cut (1.3 MiB in all). */
export const SERVER_SIZES: LibcSocketSizes = {
  receiveSlots: 16,
  receiveSlotBytes: 65_536,
  sendSlots: 64,
  sendBytes: 256 * 1024,
};
/** Full batches taken from one socket per wake-up before the event loop gets a turn. */
const BATCHES_PER_WAKE = 8;
/** How long a send waits for room in a full socket buffer before giving the datagram up. */
const SEND_WAIT_MS = 10;

// struct sockaddr_in6 is 28 bytes (sockaddr_in 16): a slot of 32 holds either.
const NAME_SLOT = 32;
// struct iovec { void *base; size_t len; }
const IOVEC = 16;
// struct mmsghdr { struct msghdr { name, namelen, iov, iovlen, control, controllen, flags }; len }
const MMSGHDR = 64;
const MSG_NAME = 0;
const MSG_NAMELEN = 8;
const MSG_IOV = 16;
const MSG_IOVLEN = 24;
const MSG_CONTROL = 32;
const MSG_CONTROLLEN = 40;
const MSG_FLAGS = 48;
const MSG_LEN = 56;
// Ancillary data per received datagram: one struct cmsghdr { size_t len; int level, type; } with
// SO_RXQ_OVFL's u32, the socket's drop count when the datagram was queued.
const CONTROL_SLOT = 32;
const CMSG_LEVEL = 8;
const CMSG_TYPE = 12;
const CMSG_DATA = 16;
const SOL_SOCKET = 1;
const SO_RCVBUF = 8;
const SO_RXQ_OVFL = 40;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "pointer"], result: "i32" },
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  // Waiting runs on a worker thread so the event loop (timers, other I/O) goes on.
  pollAsync: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | undefined;
let errnoCell: Deno.UnsafePointerView | undefined;

/** Opens libc once; throws an error that says what is missing. */
function openLibc(): Libc {
  if (libc !== undefined) return libc;
  if (Deno.build.os !== "linux") {
    throw new Error(`Cannot use libc socket I/O: it needs Linux, not ${Deno.build.os}`);
  }
  let library: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  } catch (error) {
    const reason =
      error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
        ? "run with --allow-ffi"
        : (error as Error).message;
    throw new Error(`Cannot use libc socket I/O: ${reason}`);
  }
  libc = library.symbols;
  // errno lives per thread; every synchronous call here runs on the JS thread.
  errnoCell = new Deno.UnsafePointerView(libc.__errno_location()!);
  return libc;
}

function errno(): number {
  return errnoCell!.getInt32();
}

/** An Error for a failed call, with the system's text and code: "Cannot bind …: Address already in use (errno 98)". */
function systemError(what: string, code: number): Error {
  const text = Deno.UnsafePointerView.getCString(libc!.strerror(code)!);
  const error = new Error(`Cannot ${what}: ${text} (errno ${code})`);
  (error as Error & { errno: number }).errno = code;
  return error;
}

/** The one ArrayBuffer of a socket, carved into the views libc uses. */
class Arena {
  readonly buffer: ArrayBuffer;
  readonly base: number;
  #used = 0;

  constructor(size: number) {
    this.buffer = new ArrayBuffer(size);
    this.base = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(this.buffer)));
  }

  /** The offset of the next `length` bytes, 8-aligned. */
  take(length: number): number {
    const offset = this.#used;
    this.#used += (length + 7) & ~7;
    if (this.#used > this.buffer.byteLength) throw new RangeError("Arena too small");
    return offset;
  }
}

/** A peer seen, and its sockaddr as the kernel wrote it (to send back without encoding). */
interface KnownPeer {
  readonly addr: Deno.NetAddr;
  readonly name: Uint8Array;
}

type Listener = (datagram: Uint8Array, from: Deno.NetAddr) => void;
type ErrorListener = (error: unknown) => void;

/**
 * One `poll` on a worker thread for any number of sockets, woken by an
 * eventfd when the set changes or it is closed. The set is rebuilt only
 * between polls, so the array the thread reads never changes under it; and
 * a descriptor is closed only when no poll holds it, exactly once (a number
 * closed twice would close whatever the kernel gave it to in between).
 */
export class LibcPoller {
  readonly #libc: Libc;
  readonly #wake: number;
  readonly #members = new Map<
    LibcDatagramSocket,
    { onDatagram: Listener; onError: ErrorListener }
  >();
  #order: LibcDatagramSocket[] = [];
  /** The sockets in the poll set, including those unwatched since it was built. */
  #polled = new Set<LibcDatagramSocket>();
  /** Unwatched while a poll held them: closed at the next rebuild. */
  readonly #retired: LibcDatagramSocket[] = [];
  #fds = new Uint8Array(new ArrayBuffer(16));
  #fdsView = new DataView(this.#fds.buffer);
  #changed = true;
  #closed = false;
  #running = false;
  #polling = false;
  #released = false;
  readonly #signal = new Uint8Array(new ArrayBuffer(64), 0, 8);

  constructor() {
    this.#libc = openLibc();
    this.#wake = this.#libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (this.#wake < 0) throw systemError("open an eventfd", errno());
  }

  /** Starts delivering `socket`'s datagrams (from the next wake-up on). */
  watch(socket: LibcDatagramSocket, onDatagram: Listener, onError: ErrorListener): void {
    if (this.#closed) throw new TypeError("Cannot watch: poller closed");
    this.#members.set(socket, { onDatagram, onError });
    this.#change();
  }

  /** Stops delivering `socket`'s datagrams; its descriptor is closed once no poll holds it. */
  unwatch(socket: LibcDatagramSocket): void {
    this.#members.delete(socket);
    if (this.#polling && this.#polled.has(socket)) {
      this.#retired.push(socket);
      this.#change();
    } else {
      this.#changed = true;
      socket.release();
    }
  }

  #change(): void {
    this.#changed = true;
    if (this.#polling) this.#poke();
  }

  #poke(): void {
    new DataView(this.#signal.buffer).setBigUint64(0, 1n, true);
    this.#libc.write(this.#wake, this.#signal, 8n);
  }

  /** Polls until closed. */
  async run(): Promise<void> {
    if (this.#running || this.#closed) throw new TypeError("Cannot run: running or closed");
    this.#running = true;
    try {
      await this.#loop();
    } finally {
      this.#running = false;
      this.#releaseAll();
    }
  }

  async #loop(): Promise<void> {
    while (!this.#closed) {
      if (this.#changed) this.#rebuild();
      this.#polling = true;
      const ready = await this.#libc.pollAsync(this.#fds, BigInt(this.#order.length + 1), -1);
      this.#polling = false;
      if (this.#closed) break;
      if (ready < 0) {
        // errno belongs to the worker thread that polled: ask again here, at once, to read it.
        if (this.#libc.poll(this.#fds, BigInt(this.#order.length + 1), 0) >= 0) continue;
        const code = errno();
        if (code === EINTR) continue;
        // Not transient (the set itself is wrong): say so and stop rather than spin.
        this.#reportToAll(systemError("wait for datagrams", code));
        this.#closed = true;
        break;
      }
      const view = this.#fdsView;
      if (view.getInt16(6, true) !== 0) {
        // Drain the eventfd so the next poll sleeps again.
        this.#libc.read(this.#wake, this.#signal, 8n);
      }
      const order = this.#order;
      for (let i = 0; i < order.length; i++) {
        if (view.getInt16((i + 1) * 8 + 6, true) === 0) continue;
        const socket = order[i]!;
        const member = this.#members.get(socket);
        if (member === undefined) continue;
        // Full batches mean more is waiting: drain up to a bound, then back to the
        // event loop (timers must not starve). A burst that outruns one batch per
        // wake-up would otherwise overflow the kernel's buffer.
        for (
          let round = 0;
          round < BATCHES_PER_WAKE &&
          socket.receiveBatch(member.onDatagram, member.onError) === socket.receiveSlots;
          round++
        );
      }
    }
  }

  /** Closes every descriptor left, once: the sockets' and the eventfd. */
  #releaseAll(): void {
    if (this.#released) return;
    this.#released = true;
    for (const socket of this.#retired) socket.release();
    for (const socket of this.#order) socket.release();
    for (const socket of this.#members.keys()) socket.release();
    this.#retired.length = 0;
    this.#libc.close(this.#wake);
  }

  #rebuild(): void {
    this.#changed = false;
    for (const socket of this.#retired) socket.release();
    this.#retired.length = 0;
    this.#order = [...this.#members.keys()];
    this.#polled = new Set(this.#order);
    const length = (this.#order.length + 1) * 8;
    if (this.#fds.length < length) {
      // struct pollfd { int fd; short events; short revents; }, in memory V8 never moves.
      this.#fds = new Uint8Array(new ArrayBuffer(Math.max(length, this.#fds.length * 2)));
      this.#fdsView = new DataView(this.#fds.buffer);
    }
    const view = this.#fdsView;
    view.setInt32(0, this.#wake, true);
    view.setInt16(4, POLLIN, true);
    this.#order.forEach((socket, i) => {
      view.setInt32((i + 1) * 8, socket.fd, true);
      view.setInt16((i + 1) * 8 + 4, POLLIN, true);
    });
  }

  #reportToAll(error: Error): void {
    for (const member of this.#members.values()) member.onError(error);
  }

  /** Ends `run()`, which then closes every socket still watched (at once if not running). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#polling) this.#poke();
    else if (!this.#running) this.#releaseAll();
    // Running but between polls (a callback closed it): run() ends at its next check.
  }
}

/** A UDP socket on libc's `recvmmsg`/`sendmmsg` (Linux only, `--allow-ffi`). */
export class LibcDatagramSocket {
  readonly #libc: Libc;
  /** The descriptor (for the poller). */
  readonly fd: number;
  readonly #family: number;
  readonly #sizes: LibcSocketSizes;
  readonly addr: Deno.NetAddr;

  readonly #view: DataView;
  readonly #words: Uint32Array;
  readonly #bytes: Uint8Array;
  readonly #base: number;
  readonly #scratchAt: number;
  readonly #receiveHeaders: Uint8Array;
  readonly #receiveHeadersAt: number;
  readonly #receiveNamesAt: number;
  readonly #receiveControlAt: number;
  readonly #receiveDataAt: number;
  readonly #sendHeaders: Uint8Array;
  readonly #sendHeadersAt: number;
  readonly #sendNamesAt: number;
  readonly #sendIovsAt: number;
  readonly #sendDataAt: number;

  /** Peers by family and port (IPv6 ports offset by 65,536): at most 131,072 entries. */
  readonly #known = new Map<number, KnownPeer>();
  /** Destinations not seen as peers, encoded once per address object. */
  readonly #encoded = new WeakMap<Deno.NetAddr, Uint8Array>();
  #queued = 0;
  #queuedBytes = 0;
  readonly #queuedErrors: ErrorListener[] = [];
  /** Receive slots the last `recvmmsg` wrote into (their lengths need restoring). */
  #filled = 0;
  #batching = false;
  #closed = false;
  #released = false;
  #poller: LibcPoller | undefined;
  #ownPoller = false;

  private constructor(libc: Libc, fd: number, family: number, sizes: LibcSocketSizes) {
    this.#libc = libc;
    this.fd = fd;
    this.#family = family;
    this.#sizes = sizes;
    const { receiveSlots, receiveSlotBytes, sendSlots, sendBytes } = sizes;
    const arena = new Arena(
      NAME_SLOT + 8 +
        receiveSlots * (receiveSlotBytes + NAME_SLOT + CONTROL_SLOT + IOVEC + MMSGHDR) +
        sendSlots * (NAME_SLOT + IOVEC + MMSGHDR) + sendBytes + 64,
    );
    this.#base = arena.base;
    this.#view = new DataView(arena.buffer);
    this.#words = new Uint32Array(arena.buffer);
    this.#bytes = new Uint8Array(arena.buffer);
    this.#scratchAt = arena.take(NAME_SLOT + 8);
    this.#receiveDataAt = arena.take(receiveSlots * receiveSlotBytes);
    this.#receiveNamesAt = arena.take(receiveSlots * NAME_SLOT);
    this.#receiveControlAt = arena.take(receiveSlots * CONTROL_SLOT);
    const receiveIovsAt = arena.take(receiveSlots * IOVEC);
    this.#receiveHeadersAt = arena.take(receiveSlots * MMSGHDR);
    this.#sendDataAt = arena.take(sendBytes);
    this.#sendNamesAt = arena.take(sendSlots * NAME_SLOT);
    this.#sendIovsAt = arena.take(sendSlots * IOVEC);
    this.#sendHeadersAt = arena.take(sendSlots * MMSGHDR);
    this.#receiveHeaders = this.#bytes.subarray(
      this.#receiveHeadersAt,
      this.#receiveHeadersAt + receiveSlots * MMSGHDR,
    );
    this.#sendHeaders = this.#bytes.subarray(
      this.#sendHeadersAt,
      this.#sendHeadersAt + sendSlots * MMSGHDR,
    );
    this.#filled = receiveSlots;
    for (let i = 0; i < receiveSlots; i++) {
      const iov = receiveIovsAt + i * IOVEC;
      this.#setPointer(iov, this.#receiveDataAt + i * receiveSlotBytes);
      this.#setSize(iov + 8, receiveSlotBytes);
      const header = this.#receiveHeadersAt + i * MMSGHDR;
      this.#setPointer(header + MSG_NAME, this.#receiveNamesAt + i * NAME_SLOT);
      this.#setPointer(header + MSG_IOV, iov);
      this.#setSize(header + MSG_IOVLEN, 1);
      this.#setPointer(header + MSG_CONTROL, this.#receiveControlAt + i * CONTROL_SLOT);
    }
    for (let i = 0; i < sendSlots; i++) {
      const header = this.#sendHeadersAt + i * MMSGHDR;
      this.#setPointer(header + MSG_NAME, this.#sendNamesAt + i * NAME_SLOT);
      this.#setPointer(header + MSG_IOV, this.#sendIovsAt + i * IOVEC);
      this.#setSize(header + MSG_IOVLEN, 1);
    }
    this.addr = this.#boundAddress();
  }

  /**
   * Binds `hostname` (an IP literal or `localhost`) and `port` (0: any free
   * one). `receiveBuffer` asks the kernel for that socket receive buffer
   * (SO_RCVBUF; Linux grants at most net.core.rmem_max, see
   * {@link receiveBufferBytes}).
   */
  static bind(
    hostname: string,
    port: number,
    sizes = SERVER_SIZES,
    options: { readonly receiveBuffer?: number | undefined } = {},
  ): LibcDatagramSocket {
    const ip = parseIp(hostname);
    if (ip === undefined) {
      throw new Error(`Cannot use libc socket I/O: "${hostname}" is not an IP address`);
    }
    const libc = openLibc();
    const family = ip.length === 4 ? AF_INET : AF_INET6;
    const fd = libc.socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw systemError("open a UDP socket", errno());
    const option = new Uint8Array(new ArrayBuffer(8), 0, 4);
    const optionView = new DataView(option.buffer);
    // The kernel then tells, with each datagram, how many it has dropped for want of room.
    optionView.setInt32(0, 1, true);
    libc.setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, option, 4);
    if (options.receiveBuffer !== undefined) {
      // The kernel doubles what it is asked for (for its bookkeeping): ask for half.
      optionView.setInt32(0, Math.max(1, Math.floor(options.receiveBuffer / 2)), true);
      if (libc.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, option, 4) !== 0) {
        const code = errno();
        libc.close(fd);
        throw systemError(`set a receive buffer of ${options.receiveBuffer} bytes`, code);
      }
    }
    const name = new Uint8Array(new ArrayBuffer(64), 0, NAME_SLOT);
    const length = encodeSockaddr(name, ip, port);
    if (libc.bind(fd, name, length) !== 0) {
      const code = errno();
      libc.close(fd);
      throw systemError(`bind ${hostname}:${port}`, code);
    }
    return new LibcDatagramSocket(libc, fd, family, sizes);
  }

  /** Receives on a poller of its own until closed (see `LibcPoller` to share one). */
  serve(onDatagram: Listener, onError: ErrorListener): Promise<void> {
    if (this.#poller !== undefined || this.#closed) {
      throw new TypeError("Cannot serve: already serving or closed");
    }
    const poller = new LibcPoller();
    this.#poller = poller;
    this.#ownPoller = true;
    poller.watch(this, onDatagram, onError);
    return poller.run();
  }

  /** Receives on a shared poller until closed. */
  serveOn(poller: LibcPoller, onDatagram: Listener, onError: ErrorListener): void {
    if (this.#poller !== undefined || this.#closed) {
      throw new TypeError("Cannot serve: already serving or closed");
    }
    this.#poller = poller;
    poller.watch(this, onDatagram, onError);
  }

  /** Datagrams one `recvmmsg` may take. */
  get receiveSlots(): number {
    return this.#sizes.receiveSlots;
  }

  /**
   * Takes what one `recvmmsg` gives and hands each datagram over; then sends
   * what they queued. Returns how many it took.
   */
  receiveBatch(onDatagram: Listener, onError: ErrorListener): number {
    if (this.#closed) return 0;
    const view = this.#view;
    const { receiveSlots, receiveSlotBytes } = this.#sizes;
    // The kernel shortens these for each datagram it writes: restore those it used.
    for (let i = 0; i < this.#filled; i++) {
      const header = this.#receiveHeadersAt + i * MMSGHDR;
      view.setUint32(header + MSG_NAMELEN, NAME_SLOT, true);
      this.#setSize(header + MSG_CONTROLLEN, CONTROL_SLOT);
    }
    this.#filled = 0;
    const count = this.#libc.recvmmsg(
      this.fd,
      this.#receiveHeaders,
      receiveSlots,
      MSG_DONTWAIT,
      null,
    );
    if (count < 0) {
      const code = errno();
      if (code !== EAGAIN && code !== EINTR) onError(systemError("receive", code));
      return 0;
    }
    this.#filled = count;
    this.#batching = true;
    try {
      if (count > 0) this.#noteDrops(count - 1);
      for (let i = 0; i < count && !this.#closed; i++) {
        const header = this.#receiveHeadersAt + i * MMSGHDR;
        const length = view.getUint32(header + MSG_LEN, true);
        if ((view.getInt32(header + MSG_FLAGS, true) & MSG_TRUNC) !== 0) {
          onError(new Error(`Cannot receive: datagram longer than ${receiveSlotBytes} bytes`));
          continue;
        }
        const from = this.#peerAt(this.#receiveNamesAt + i * NAME_SLOT);
        const start = this.#receiveDataAt + i * receiveSlotBytes;
        try {
          onDatagram(this.#bytes.subarray(start, start + length), from);
        } catch (error) {
          onError(error);
        }
      }
    } finally {
      this.#batching = false;
      this.#flush();
    }
    return count;
  }

  /**
   * Datagrams the kernel dropped because this socket's receive buffer was
   * full, as of the last datagram received (SO_RXQ_OVFL; it counts from the
   * socket's creation and is only reported once there is something to say).
   */
  get receiveDrops(): number {
    return this.#drops;
  }

  #drops = 0;

  /** Reads the drop count off the last datagram of a batch (the count only grows). */
  #noteDrops(slot: number): void {
    const view = this.#view;
    const header = this.#receiveHeadersAt + slot * MMSGHDR;
    if (view.getUint32(header + MSG_CONTROLLEN, true) < CMSG_DATA + 4) return;
    const control = this.#receiveControlAt + slot * CONTROL_SLOT;
    if (
      view.getInt32(control + CMSG_LEVEL, true) === SOL_SOCKET &&
      view.getInt32(control + CMSG_TYPE, true) === SO_RXQ_OVFL
    ) {
      const drops = view.getUint32(control + CMSG_DATA, true);
      if (drops > this.#drops) this.#drops = drops;
    }
  }

  /** The receive buffer the kernel granted (SO_RCVBUF as read back: twice what was set). */
  get receiveBufferBytes(): number {
    const at = this.#scratchAt;
    this.#view.setUint32(at + 4, 4, true);
    const value = this.#bytes.subarray(at, at + 4);
    const length = this.#bytes.subarray(at + 4, at + 8);
    if (this.#libc.getsockopt(this.fd, SOL_SOCKET, SO_RCVBUF, value, length) !== 0) {
      throw systemError("read the receive buffer size", errno());
    }
    return this.#view.getInt32(at, true);
  }

  /** The peer whose sockaddr is at `offset`, made once per address and port. */
  #peerAt(offset: number): Deno.NetAddr {
    const view = this.#view;
    const v6 = view.getUint16(offset, true) === AF_INET6;
    const port = view.getUint16(offset + 2, false);
    const key = v6 ? port + 65_536 : port;
    const ipAt = v6 ? 8 : 4;
    const ipLength = v6 ? 16 : 4;
    const known = this.#known.get(key);
    if (known !== undefined && sameBytes(this.#bytes, offset + ipAt, known.name, ipAt, ipLength)) {
      return known.addr;
    }
    const name = this.#bytes.slice(offset, offset + (v6 ? 28 : 16));
    const addr = decodeSockaddr(name);
    this.#known.set(key, { addr, name });
    return addr;
  }

  /** Queues a datagram during a receive batch, else sends it at once; never waits on the event loop. */
  send(datagram: Uint8Array, to: Deno.NetAddr, onError: ErrorListener): Promise<void> {
    const { sendSlots, sendBytes } = this.#sizes;
    if (this.#closed) {
      onError(new Error("Cannot send: socket closed"));
      return SETTLED;
    }
    const name = this.#nameOf(to);
    if (name === undefined) {
      onError(new Error(`Cannot send to ${to.hostname}: not an address of this socket's family`));
      return SETTLED;
    }
    if (datagram.length > sendBytes) {
      onError(new Error(`Cannot send: datagram of ${datagram.length} bytes`));
      return SETTLED;
    }
    if (this.#queued === sendSlots || this.#queuedBytes + datagram.length > sendBytes) {
      this.#flush();
    }
    const i = this.#queued++;
    const at = this.#queuedBytes;
    this.#bytes.set(datagram, this.#sendDataAt + at);
    this.#queuedBytes = (at + datagram.length + 7) & ~7;
    this.#bytes.set(name, this.#sendNamesAt + i * NAME_SLOT);
    const iov = this.#sendIovsAt + i * IOVEC;
    this.#setPointer(iov, this.#sendDataAt + at);
    this.#setSize(iov + 8, datagram.length);
    this.#view.setUint32(this.#sendHeadersAt + i * MMSGHDR + MSG_NAMELEN, name.length, true);
    this.#queuedErrors[i] = onError;
    // Outside a receive batch (timers, shutdown) nothing else is coming: send now.
    if (!this.#batching) this.#flush();
    return SETTLED;
  }

  /** Sends what is queued; a datagram that fails is reported to its sender and skipped. */
  #flush(): void {
    const count = this.#queued;
    if (this.#released) {
      for (let i = 0; i < count; i++) {
        this.#queuedErrors[i]!(new Error("Cannot send: socket closed"));
      }
      this.#queued = 0;
      this.#queuedBytes = 0;
      return;
    }
    let sent = 0;
    let waited = false;
    while (sent < count) {
      const headers = sent === 0
        ? this.#sendHeaders
        : this.#sendHeaders.subarray(sent * MMSGHDR, count * MMSGHDR);
      const result = this.#libc.sendmmsg(this.fd, headers, count - sent, MSG_DONTWAIT);
      if (result > 0) {
        sent += result;
        continue;
      }
      const code = errno();
      if (code === EINTR) continue;
      if (code === EAGAIN && !waited) {
        // The socket buffer is full: give the kernel a moment, once per flush.
        waited = true;
        this.#waitWritable();
        continue;
      }
      this.#queuedErrors[sent]!(systemError("send", code));
      sent++;
    }
    this.#queued = 0;
    this.#queuedBytes = 0;
  }

  #waitWritable(): void {
    const at = this.#scratchAt;
    this.#view.setInt32(at, this.fd, true);
    this.#view.setInt16(at + 4, POLLOUT, true);
    this.#view.setInt16(at + 6, 0, true);
    this.#libc.poll(this.#bytes.subarray(at, at + 8), 1n, SEND_WAIT_MS);
  }

  /**
   * The sockaddr to send to `to`: the kernel's own for a peer seen, else
   * encoded once per address object (a client sends to one server object
   * again and again).
   */
  #nameOf(to: Deno.NetAddr): Uint8Array | undefined {
    const v6 = this.#family === AF_INET6;
    const known = this.#known.get(v6 ? to.port + 65_536 : to.port);
    if (known !== undefined && known.addr === to) return known.name;
    const encoded = this.#encoded.get(to);
    if (encoded !== undefined) return encoded;
    let ip = parseIp(to.hostname);
    if (ip === undefined) return undefined;
    if (v6 && ip.length === 4) ip = ipv4Mapped(ip);
    if ((ip.length === 16) !== v6) return undefined;
    const name = new Uint8Array(NAME_SLOT);
    const result = name.subarray(0, encodeSockaddr(name, ip, to.port));
    this.#encoded.set(to, result);
    return result;
  }

  #boundAddress(): Deno.NetAddr {
    const at = this.#scratchAt;
    this.#view.setUint32(at + NAME_SLOT, NAME_SLOT, true);
    const name = this.#bytes.subarray(at, at + NAME_SLOT);
    if (
      this.#libc.getsockname(
        this.fd,
        name,
        this.#bytes.subarray(at + NAME_SLOT, at + NAME_SLOT + 4),
      ) !== 0
    ) {
      throw systemError("read the bound address", errno());
    }
    return decodeSockaddr(name);
  }

  /** Closes the socket: `serve` then resolves, and no datagram is delivered after. */
  close(): void {
    if (this.#closed) return;
    // What a batch queued before the close still leaves.
    if (this.#queued > 0) this.#flush();
    this.#closed = true;
    const poller = this.#poller;
    if (poller === undefined) this.release();
    else if (this.#ownPoller) poller.close();
    else poller.unwatch(this);
  }

  /** Closes the descriptor (the poller's part, once no poll holds it). */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#closed = true;
    this.#libc.close(this.fd);
  }

  /** A pointer into the arena, written as two little-endian words: no BigInt per write. */
  #setPointer(offset: number, arenaOffset: number): void {
    const address = this.#base + arenaOffset;
    this.#words[offset >> 2] = address % 0x1_0000_0000;
    this.#words[(offset >> 2) + 1] = Math.floor(address / 0x1_0000_0000);
  }

  #setSize(offset: number, size: number): void {
    this.#words[offset >> 2] = size;
    this.#words[(offset >> 2) + 1] = 0;
  }
}

const SETTLED: Promise<void> = Promise.resolve();

/** Writes a sockaddr_in (IPv4) or sockaddr_in6 into `into`; returns its length. */
function encodeSockaddr(into: Uint8Array, ip: IpBytes, port: number): number {
  const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
  into.fill(0, 0, NAME_SLOT);
  view.setUint16(0, ip.length === 4 ? AF_INET : AF_INET6, true);
  view.setUint16(2, port, false);
  into.set(ip, ip.length === 4 ? 4 : 8);
  return ip.length === 4 ? 16 : 28;
}

/** The address a sockaddr_in or sockaddr_in6 names (the inverse of {@link encodeSockaddr}). */
function decodeSockaddr(name: Uint8Array): Deno.NetAddr {
  const view = new DataView(name.buffer, name.byteOffset, name.byteLength);
  const ip = view.getUint16(0, true) === AF_INET6 ? name.subarray(8, 24) : name.subarray(4, 8);
  return { transport: "udp", hostname: formatIp(ip), port: view.getUint16(2, false) };
}

function ipv4Mapped(ip: IpBytes): IpBytes {
  const mapped = new Uint8Array(16);
  mapped[10] = 0xff;
  mapped[11] = 0xff;
  mapped.set(ip, 12);
  return mapped;
}

function sameBytes(
  a: Uint8Array,
  aAt: number,
  b: Uint8Array,
  bAt: number,
  length: number,
): boolean {
  for (let i = 0; i < length; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}
