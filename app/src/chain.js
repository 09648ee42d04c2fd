// The wallet (EIP-1193 providers announced through EIP-6963), the chain (viem clients over the
// wallet's provider), transactions with their states, and contract errors in words.
import {
  BaseError,
  ContractFunctionRevertedError,
  UserRejectedRequestError,
  createPublicClient,
  createWalletClient,
  custom,
  defineChain,
  formatUnits,
  http,
} from 'viem'

export const ETH = '0x0000000000000000000000000000000000000000'

// ---------------------------------------------------------------- wallets (EIP-6963)

export function discoverWallets(onChange) {
  const found = new Map()
  const announce = (event) => {
    const { info, provider } = event.detail || {}
    if (!info || !provider) return
    found.set(info.uuid, { info, provider })
    onChange([...found.values()])
  }
  window.addEventListener('eip6963:announceProvider', announce)
  window.dispatchEvent(new Event('eip6963:requestProvider'))
  // A wallet that only sets window.ethereum (older ones) is still offered.
  const legacy = setTimeout(() => {
    if (!found.size && window.ethereum) {
      found.set('legacy', { info: { uuid: 'legacy', name: 'Browser wallet', icon: '' }, provider: window.ethereum })
      onChange([...found.values()])
    }
  }, 200)
  return () => {
    clearTimeout(legacy)
    window.removeEventListener('eip6963:announceProvider', announce)
  }
}

export function chainOf(config) {
  const c = config.chain
  return defineChain({
    id: c.id,
    name: c.name,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [c.rpcUrl] } },
  })
}

export function clients(config, provider, account) {
  const chain = chainOf(config)
  const transport = provider ? custom(provider) : http(config.chain.rpcUrl)
  // a local chain mines at once: look for receipts often; a public one every 2 s
  const pollingInterval = config.chain.id === 31337 ? 100 : 2000
  const pub = createPublicClient({ chain, transport, pollingInterval })
  const wallet = provider && account ? createWalletClient({ chain, transport, account }) : null
  return { pub, wallet, chain }
}

export async function switchChain(provider, config) {
  const chainId = '0x' + config.chain.id.toString(16)
  try {
    await provider.request({ method: 'wallet_switchEthereumChain', params: [{ chainId }] })
  } catch (error) {
    if (error?.code !== 4902 && error?.data?.originalError?.code !== 4902) throw error
    await provider.request({
      method: 'wallet_addEthereumChain',
      params: [
        {
          chainId,
          chainName: config.chain.name,
          rpcUrls: [config.chain.rpcUrl],
          nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
        },
      ],
    })
  }
}

// ---------------------------------------------------------------- amounts

export function formatAmount(amount, asset, assets) {
  const info = assets?.[String(asset).toLowerCase()] || (BigInt(asset) === 0n ? { symbol: 'ETH', decimals: 18 } : null)
  if (!info) return `${amount} (${short(asset)})`
  return `${formatUnits(BigInt(amount), info.decimals)} ${info.symbol}`
}

export function short(address) {
  if (!address) return ''
  return address.length > 14 ? `${address.slice(0, 6)}…${address.slice(-4)}` : address
}

// ---------------------------------------------------------------- errors in words

// Words for the custom errors a buyer, creator or operator can meet (the others show their name).
const ERROR_WORDS = {
  en: {
    Licensing_PriceAboveMax: 'the price rose to {0} since you looked (your maximum was {1}): look again',
    Licensing_OfferInactive: 'this offer is no longer on sale',
    Licensing_OfferExpired: 'this offer is past its end date',
    Licensing_SoldOut: 'this offer is sold out ({1} licences)',
    Licensing_ModelFrozen: 'this voice is frozen by the arbiter',
    Licensing_ModelRetired: 'this voice is retiring and sells nothing more',
    Licensing_ServiceEnded: 'this voice is no longer served',
    Licensing_WrongPayment: 'the payment was {1}, the price {0}',
    Licensing_PaymentFailed: 'the token payment failed: too little balance or allowance',
    Licensing_LicenseExpired: 'the licence expired',
    Licensing_UsesExhausted: 'the licence has no use left (limit {1})',
    Licensing_NotLicenseHolder: 'you do not hold this licence',
    Licensing_SubscriptionCancelled: 'the subscription was cancelled',
    Licensing_NotModelOwner: 'only the voice’s owner can do this',
    Licensing_BeyondNotice: 'this would run past the voice’s end of service',
    Router_FeeAboveMax: 'the operator’s fee rose to {0}, above your maximum {1}',
    Router_LanguageNotSupported: 'the voice does not speak this language',
    Router_OperatorNotAllowed: 'this operator does not serve this voice',
    Router_InputTooLong: 'the text is too long ({0} bytes, at most {1})',
    Router_EmptyInput: 'the text is empty',
    Router_WrongPayment: 'the escrow sent was {1}, {0} is needed',
    Ledger_NothingToWithdraw: 'there is nothing to withdraw',
    Ledger_NothingToDistribute: 'there is nothing to split',
    ERC20InsufficientBalance: 'your token balance is too low ({1}, {2} needed)',
    ERC20InsufficientAllowance: 'the allowance is too low ({1}, {2} needed)',
  },
  zh: {
    Licensing_PriceAboveMax: '价格已涨到 {0}（你的上限是 {1}）：请重新查看',
    Licensing_OfferInactive: '此报价已下架',
    Licensing_OfferExpired: '此报价已过截止日期',
    Licensing_SoldOut: '此报价已售罄（{1} 份）',
    Licensing_ModelFrozen: '此声音已被仲裁者冻结',
    Licensing_ModelRetired: '此声音即将停止服务，不再出售',
    Licensing_LicenseExpired: '授权已过期',
    Licensing_UsesExhausted: '授权次数已用完（上限 {1}）',
    Licensing_NotModelOwner: '只有声音所有者可以这样做',
    Licensing_PaymentFailed: '代币支付失败：余额或授权额度不足',
    Router_FeeAboveMax: '运营费已涨到 {0}，超过你的上限 {1}',
    Router_LanguageNotSupported: '此声音不支持该语言',
    Ledger_NothingToWithdraw: '没有可提取的金额',
    ERC20InsufficientBalance: '代币余额不足（{1}，需要 {2}）',
    ERC20InsufficientAllowance: '授权额度不足（{1}，需要 {2}）',
  },
}

export function explainError(error, t, lang) {
  if (!error) return ''
  const walk = error instanceof BaseError ? error.walk.bind(error) : () => null
  const rejected =
    error?.code === 4001 ||
    walk((e) => e instanceof UserRejectedRequestError || e?.code === 4001) ||
    /user rejected|user denied/i.test(String(error?.message))
  if (rejected) return t('err.rejected')
  const reverted = walk((e) => e instanceof ContractFunctionRevertedError)
  if (reverted?.data?.errorName) {
    const { errorName, args = [] } = reverted.data
    const words = ERROR_WORDS[lang]?.[errorName] ?? ERROR_WORDS.en[errorName]
    const filled = words
      ? words.replace(/\{(\d+)\}/g, (_, i) => String(args[Number(i)]))
      : `${errorName}(${args.map(String).join(', ')})`
    return t('err.chain', { name: filled })
  }
  if (walk((e) => e?.name === 'InsufficientFundsError') || /insufficient funds/i.test(String(error?.message))) {
    return t('err.funds')
  }
  return t('err.unknown', { message: error.shortMessage || error.message || String(error) })
}

// Every custom error of every contract, so that a revert inside a call into another contract
// (a token's ERC20InsufficientAllowance under LicenseManager.buy) is decoded too.
export function withAllErrors(abi, abis) {
  const errors = Object.values(abis).flatMap((a) => a.filter((item) => item.type === 'error'))
  const seen = new Set(abi.filter((i) => i.type === 'error').map((i) => i.name))
  return [...abi, ...errors.filter((e) => !seen.has(e.name) && seen.add(e.name))]
}

// ---------------------------------------------------------------- transactions

// Simulate (contract errors are decoded before anything is signed), ask the wallet to sign,
// wait for the receipt; onState({stage, hash, block, error}) follows along.
export async function sendTx(ctx, { role, address, functionName, args, value }, onState) {
  const { pub, wallet, config } = ctx
  const abi = withAllErrors(config.abis[role], config.abis)
  const target = address || config.deployment[role]
  onState({ stage: 'simulating' })
  const { request } = await pub.simulateContract({
    account: wallet.account,
    address: target,
    abi,
    functionName,
    args,
    value,
  })
  onState({ stage: 'signing' })
  const hash = await wallet.writeContract(request)
  onState({ stage: 'pending', hash })
  const receipt = await pub.waitForTransactionReceipt({ hash })
  if (receipt.status !== 'success') {
    onState({ stage: 'reverted', hash })
    throw new Error('reverted')
  }
  onState({ stage: 'confirmed', hash, block: receipt.blockNumber })
  return receipt
}

export function read(ctx, role, functionName, args, address) {
  return ctx.pub.readContract({
    address: address || ctx.config.deployment[role],
    abi: ctx.config.abis[role],
    functionName,
    args,
  })
}
