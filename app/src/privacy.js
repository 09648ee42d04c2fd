// Private requests in the browser, byte for byte as voicemarket's Python does them
// (docs/privacy.md; voicemarket/market/buyer_key.py, content/sealing.py, content/envelopes.py):
// - the buyer's encryption key: HKDF-SHA256 of the signature (r || low s) of a fixed message;
// - a sealed box: ECIES over secp256k1 (ECDH x, HKDF, AES-256-GCM key wrap) + a sealed stream;
// - the request envelope (version, reply-to key, salt, text) sealed to the operator's key, with a
//   salted inputHash; the audio comes back sealed to the buyer's key.
import { secp256k1 } from '@noble/curves/secp256k1'
import { getAddress, keccak256, hexToBytes as viemHexToBytes } from 'viem'

const N = secp256k1.CURVE.n
const text = new TextEncoder()
const MAGIC = text.encode('VMSEAL\x00\x01')
const BOX_MAGIC = new Uint8Array([0x56, 0x4d, 0x42, 0x01]) // "VMB\x01"
const KEYWRAP_INFO = text.encode('voicemarket/keywrap/v1')
const KEY_ID_LABEL = text.encode('voicemarket/sealing/key-id/v1')
const CHUNK_SIZE = 1024 * 1024
const HEADER_SIZE = 40
const TAG_SIZE = 16
export const SALT_SIZE = 16
export const PRIVATE_INLINE = 0x02
export const MAX_PRIVATE_TEXT_BYTES = 512 - 1 - 153 - (1 + 33 + SALT_SIZE) // 308

const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) {
    out.set(p, at)
    at += p.length
  }
  return out
}
const random = (n) => crypto.getRandomValues(new Uint8Array(n))
const u32 = (value) => new Uint8Array([(value >>> 24) & 255, (value >>> 16) & 255, (value >>> 8) & 255, value & 255])
const bigBytes = (value, size) => {
  const out = new Uint8Array(size)
  for (let i = size - 1; i >= 0; i--, value >>= 8n) out[i] = Number(value & 255n)
  return out
}
const bytesBig = (bytes) => bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n)
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i])

async function sha256(...parts) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(...parts)))
}

async function hkdf(ikm, salt, info, length = 32) {
  const key = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits'])
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, length * 8))
}

async function hmacSha256(key, message) {
  const k = await crypto.subtle.importKey('raw', key, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign'])
  return new Uint8Array(await crypto.subtle.sign('HMAC', k, message))
}

async function aesGcm(key, mode, nonce, data, aad) {
  const k = await crypto.subtle.importKey('raw', key, 'AES-GCM', false, [mode])
  const run = mode === 'encrypt' ? crypto.subtle.encrypt : crypto.subtle.decrypt
  return new Uint8Array(await run.call(crypto.subtle, { name: 'AES-GCM', iv: nonce, additionalData: aad }, k, data))
}

// ---------------------------------------------------------------- the buyer's key

export function keyMessage(chainId, account) {
  return (
    `voicemarket encryption key v1\nchain: ${chainId}\naccount: ${getAddress(account)}\n\n` +
    'Signing this makes your voicemarket encryption key: it opens the speech you ask for privately ' +
    'and the voice models you license for local use. Anyone who gets this signature can read them. ' +
    "Sign it only in voicemarket's own tools; no transaction or login ever needs it."
  )
}

export async function keyFromSignature(signatureHex, chainId, account) {
  const signature = viemHexToBytes(signatureHex)
  const r = bytesBig(signature.slice(0, 32))
  let s = bytesBig(signature.slice(32, 64))
  if (!(r > 0n && r < N && s > 0n && s < N)) throw new Error('the wallet’s signature is malformed')
  if (s > N - s) s = N - s
  const info = concat(bigBytes(BigInt(chainId), 32), viemHexToBytes(getAddress(account)))
  const material = concat(bigBytes(r, 32), bigBytes(s, 32))
  for (let counter = 0; counter < 256; counter++) {
    const candidate = await hkdf(material, text.encode('voicemarket/buyer-key/v1'), concat(info, [counter]))
    const value = bytesBig(candidate)
    if (value > 0n && value < N) return candidate
  }
  throw new Error('unreachable')
}

export class BuyerKey {
  constructor(privateKey) {
    this.privateKey = privateKey
    this.publicKey = secp256k1.getPublicKey(privateKey, false).slice(1) // 64 bytes, x || y
    this.compressed = secp256k1.getPublicKey(privateKey, true)
  }

  // The address of the encryption key (not the account's), as Python's BuyerKey.key_address.
  get address() {
    return getAddress('0x' + keccak256(this.publicKey).slice(-40))
  }

  async inputSalt(message) {
    const label = text.encode('voicemarket/input-salt/v1\x00')
    return (await hmacSha256(this.privateKey, concat(label, text.encode(message)))).slice(0, SALT_SIZE)
  }

  // Ask the wallet to sign the key message (personal_sign) and derive the key from it.
  static async derive(walletClient, chainId) {
    const account = walletClient.account.address
    const signature = await walletClient.signMessage({ message: keyMessage(chainId, account) })
    return new BuyerKey(await keyFromSignature(signature, chainId, account))
  }
}

// ---------------------------------------------------------------- sealed streams and boxes

async function keyId(dataKey) {
  return (await sha256(KEY_ID_LABEL, dataKey)).slice(0, 16)
}

export async function sealBytes(data, dataKey) {
  const prefix = random(8)
  const header = concat(MAGIC, u32(CHUNK_SIZE), prefix, await keyId(dataKey), new Uint8Array(4))
  const parts = [header]
  const chunks = Math.max(1, Math.ceil(data.length / CHUNK_SIZE))
  for (let i = 0; i < chunks; i++) {
    const final = i === chunks - 1
    const chunk = data.slice(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE)
    parts.push(await aesGcm(dataKey, 'encrypt', concat(prefix, u32(i)), chunk, concat(header, [final ? 1 : 0])))
  }
  return concat(...parts)
}

export async function unsealBytes(sealed, dataKey) {
  const header = sealed.slice(0, HEADER_SIZE)
  if (!equal(header.slice(0, 8), MAGIC)) throw new Error('not a voicemarket sealed stream')
  const view = new DataView(header.buffer)
  const chunkSize = view.getUint32(8)
  const prefix = header.slice(12, 20)
  if (!equal(header.slice(20, 36), await keyId(dataKey))) throw new Error('this key does not open this stream')
  const out = []
  const sealedSize = chunkSize + TAG_SIZE
  for (let at = HEADER_SIZE, i = 0; ; i++, at += sealedSize) {
    const final = at + sealedSize >= sealed.length
    const chunk = sealed.slice(at, Math.min(at + sealedSize, sealed.length))
    out.push(await aesGcm(dataKey, 'decrypt', concat(prefix, u32(i)), chunk, concat(header, [final ? 1 : 0])))
    if (final) return concat(...out)
  }
}

async function kek(sharedX, ephemeral64, recipient64) {
  return hkdf(sharedX, concat(ephemeral64, recipient64), KEYWRAP_INFO)
}

// `message` sealed so that only the holder of `publicKey64`'s private key can read it.
export async function sealBox(message, publicKey64) {
  const dataKey = random(32)
  const ephemeral = secp256k1.utils.randomPrivateKey()
  const ephemeral64 = secp256k1.getPublicKey(ephemeral, false).slice(1)
  const sharedX = secp256k1.getSharedSecret(ephemeral, concat([4], publicKey64), false).slice(1, 33)
  const nonce = random(12)
  const wrapped = await aesGcm(await kek(sharedX, ephemeral64, publicKey64), 'encrypt', nonce, dataKey,
    concat(KEYWRAP_INFO, await keyId(dataKey)))
  const sealed = await sealBytes(message, dataKey)
  return concat(BOX_MAGIC, secp256k1.getPublicKey(ephemeral, true), nonce, wrapped, sealed)
}

export async function openBox(box, privateKey) {
  if (!equal(box.slice(0, 4), BOX_MAGIC)) throw new Error('not a voicemarket sealed box')
  const ephemeral64 = secp256k1.ProjectivePoint.fromHex(box.slice(4, 37)).toRawBytes(false).slice(1)
  const nonce = box.slice(37, 49)
  const wrapped = box.slice(49, 97)
  const sealed = box.slice(97)
  const sharedX = secp256k1.getSharedSecret(privateKey, concat([4], ephemeral64), false).slice(1, 33)
  const own = secp256k1.getPublicKey(privateKey, false).slice(1)
  const kid = sealed.slice(20, 36)
  const dataKey = await aesGcm(await kek(sharedX, ephemeral64, own), 'decrypt', nonce, wrapped, concat(KEYWRAP_INFO, kid))
  return unsealBytes(sealed, dataKey)
}

// ---------------------------------------------------------------- private requests

// {input, inputHash, salt} of a private request for `message` to the operator's 64-byte key.
export async function privateInput(message, buyerKey, operatorKey64) {
  const utf8 = text.encode(message)
  if (utf8.length > MAX_PRIVATE_TEXT_BYTES) throw new Error(`at most ${MAX_PRIVATE_TEXT_BYTES} bytes fit in a private request`)
  const salt = await buyerKey.inputSalt(message)
  const envelope = concat([1], buyerKey.compressed, salt, utf8)
  const box = await sealBox(envelope, operatorKey64)
  const inputHash = await sha256(text.encode('voicemarket/private-input/v1\x00'), salt, utf8)
  return { input: concat([PRIVATE_INLINE], box), inputHash, salt }
}
