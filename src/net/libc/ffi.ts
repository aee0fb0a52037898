/**
 * The binding to glibc: the constants and struct layouts of the calls this
 * backend makes, their FFI symbols, and errno. Linux on a little-endian
 * 64-bit CPU; x86_64 and aarch64 share every layout here.
 *
 * @module
 */

export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const MSG_TRUNC = 0x20;
export const POLLIN = 1;
export const POLLOUT = 4;
export const EINTR = 4;
export const EAGAIN = 11;
export const SOL_SOCKET = 1;
export const SO_RCVBUF = 8;
export const SO_RXQ_OVFL = 40;

// struct iovec { void *base; size_t len; }
export const IOVEC = 16;
// struct mmsghdr { struct msghdr { name, namelen, iov, iovlen, control, controllen, flags }; len }
export const MMSGHDR = 64;
export const MSG_NAME = 0;
export const MSG_NAMELEN = 8;
export const MSG_IOV = 16;
export const MSG_IOVLEN = 24;
export const MSG_CONTROL = 32;
export const MSG_CONTROLLEN = 40;
export const MSG_FLAGS = 48;
export const MSG_LEN = 56;
// struct cmsghdr { size_t len; int level, type; } and the data after it.
export const CMSG_LEVEL = 8;
export const CMSG_TYPE = 12;
export const CMSG_DATA = 16;

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

/** libc's functions, as this backend calls them. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let libc: Libc | undefined;
let errnoCell: Deno.UnsafePointerView | undefined;

/** Opens libc once; throws an error that says what is missing. */
export function openLibc(): Libc {
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

/** The JS thread's errno: read it right after the call that failed. */
export function errno(): number {
  return errnoCell!.getInt32();
}

/** An Error for a failed call, with the system's text and code: "Cannot bind …: Address already in use (errno 98)". */
export function systemError(what: string, code: number): Error {
  const text = Deno.UnsafePointerView.getCString(libc!.strerror(code)!);
  const error = new Error(`Cannot ${what}: ${text} (errno ${code})`);
  (error as Error & { errno: number }).errno = code;
  return error;
}
