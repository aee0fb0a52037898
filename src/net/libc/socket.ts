/**
 * A UDP socket on libc's `recvmmsg`/`sendmmsg`: every waiting datagram in one
 * system call, and what a batch produced sent in one more.
 *
 * @module
 */

import { parseIp } from "../../codec/ip_address.ts";
import { Arena } from "./arena.ts";
import {
  AF_INET,
  AF_INET6,
  CMSG_DATA,
  CMSG_LEVEL,
  CMSG_TYPE,
  EAGAIN,
  EINTR,
  errno,
  IOVEC,
  type Libc,
  MMSGHDR,
  MSG_CONTROL,
  MSG_CONTROLLEN,
  MSG_DONTWAIT,
  MSG_FLAGS,
  MSG_IOV,
  MSG_IOVLEN,
  MSG_LEN,
  MSG_NAME,
  MSG_NAMELEN,
  MSG_TRUNC,
  openLibc,
  POLLOUT,
  SO_RCVBUF,
  SO_RXQ_OVFL,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_SOCKET,
  systemError,
} from "./ffi.ts";
import {
  type DatagramListener,
  type ErrorListener,
  LibcPoller,
  type PolledSocket,
} from "./poller.ts";
import { decodeSockaddr, encodeSockaddr, ipv4Mapped, NAME_SLOT } from "./sockaddr.ts";

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
/** How long a send waits for room in a full socket buffer before giving the datagram up. */
const SEND_WAIT_MS = 10;
// Ancillary data per received datagram: one struct cmsghdr with SO_RXQ_OVFL's u32, the
// socket's drop count when the datagram was queued.
const CONTROL_SLOT = 32;

/** A peer seen, and its sockaddr as the kernel wrote it (to send back without encoding). */
interface KnownPeer {
  readonly addr: Deno.NetAddr;
  readonly name: Uint8Array;
}

/** A UDP socket on libc's `recvmmsg`/`sendmmsg` (Linux only, `--allow-ffi`). */
export class LibcDatagramSocket implements PolledSocket {
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
  serve(onDatagram: DatagramListener, onError: ErrorListener): Promise<void> {
    if (this.#poller !== undefined || this.#closed) {
      throw new TypeError("Cannot serve: already serving or closed");
    }
    const poller = new LibcPoller();
    this.#poller = poller;
    this.#ownPoller = true;
    poller.watch(this, onDatagram, onError);
    return poller.run();
  }

  /**
   * Receives on a shared poller until closed (the load tool's clients share
   * one). Here rather than in tools/: `close` must know whether to close its
   * own poller or leave a shared one.
   */
  serveOn(poller: LibcPoller, onDatagram: DatagramListener, onError: ErrorListener): void {
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
   * what they queued. Returns how many it took. The poller calls it when the
   * descriptor is readable.
   */
  receiveBatch(onDatagram: DatagramListener, onError: ErrorListener): number {
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
