// A test wallet injected before the page's scripts: an EIP-1193 provider announced through
// EIP-6963, backed by anvil's unlocked test accounts (transactions are forwarded to anvil's
// eth_sendTransaction). window.__wallet controls it from the test: rejectNext (the next
// signature is refused with code 4001), chainId (what the wallet is on), knownChains (the chains it
// can switch to without adding them first), calls (methods asked).
(() => {
  const settings = __SETTINGS__
  const wallet = (window.__wallet = { ...settings, rejectNext: false, calls: [] })
  const listeners = {}
  const emit = (event, value) => (listeners[event] || []).forEach((fn) => fn(value))
  const fail = (code, message) => Object.assign(new Error(message), { code })
  async function node(method, params) {
    const response = await fetch(wallet.rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: wallet.calls.length, method, params }),
    })
    const answer = await response.json()
    if (answer.error) throw Object.assign(new Error(answer.error.message), answer.error)
    return answer.result
  }
  const provider = {
    async request({ method, params = [] }) {
      wallet.calls.push(method)
      switch (method) {
        case 'eth_requestAccounts':
        case 'eth_accounts':
          return [wallet.account]
        case 'eth_chainId':
          return '0x' + wallet.chainId.toString(16)
        case 'wallet_switchEthereumChain': {
          // a wallet that does not know the chain yet answers 4902 (the page then adds it)
          const wanted = parseInt(params[0].chainId, 16)
          if (!wallet.knownChains.includes(wanted)) throw fail(4902, 'Unrecognized chain ID')
          wallet.chainId = wanted
          emit('chainChanged', params[0].chainId)
          return null
        }
        case 'wallet_addEthereumChain': {
          const added = params[0]
          if (parseInt(added.chainId, 16) !== wallet.marketChainId || added.rpcUrls[0] !== wallet.rpcUrl)
            throw fail(-32602, `unexpected chain ${JSON.stringify(added)}`)
          wallet.knownChains.push(parseInt(added.chainId, 16))
          wallet.chainId = parseInt(added.chainId, 16) // wallets switch to a chain they add
          emit('chainChanged', added.chainId)
          return null
        }
        case 'eth_sendTransaction':
        case 'personal_sign':
        case 'eth_signTypedData_v4':
          if (wallet.rejectNext) {
            wallet.rejectNext = false
            throw fail(4001, 'User rejected the request.')
          }
          if (wallet.chainId !== wallet.marketChainId) throw fail(4901, 'wrong chain')
          return node(method, params)
        default:
          return node(method, params)
      }
    },
    on(event, fn) {
      ;(listeners[event] ||= []).push(fn)
    },
    removeListener(event, fn) {
      listeners[event] = (listeners[event] || []).filter((f) => f !== fn)
    },
  }
  const info = Object.freeze({
    uuid: '0b5e1c1e-7e57-4a11-9e75-000000000001',
    name: 'Test wallet',
    icon: 'data:image/svg+xml,%3Csvg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/%3E',
    rdns: 'dev.voicemarket.testwallet',
  })
  const announce = () =>
    window.dispatchEvent(new CustomEvent('eip6963:announceProvider', { detail: Object.freeze({ info, provider }) }))
  window.addEventListener('eip6963:requestProvider', announce)
  announce()
})()
