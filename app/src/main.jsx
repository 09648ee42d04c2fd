// The voicemarket DApp: reads lists and history from the index API (same origin), sends every
// transaction from the user's wallet straight to the chain. Routes are in the URL's hash.
import { StrictMode, useCallback, useEffect, useMemo, useState } from 'react'
import { createRoot } from 'react-dom/client'
import { clients, discoverWallets, explainError, short, switchChain } from './chain.js'
import { Ctx, api, useApp } from './context.js'
import { initialLanguage, translator } from './i18n.js'
import { Browse } from './pages/Browse.jsx'
import { Creator } from './pages/Creator.jsx'
import { Licences } from './pages/Licences.jsx'
import { Operator } from './pages/Operator.jsx'
import { Voice } from './pages/Voice.jsx'
import './style.css'

function useHashRoute() {
  const [hash, setHash] = useState(location.hash || '#/')
  useEffect(() => {
    const changed = () => setHash(location.hash || '#/')
    window.addEventListener('hashchange', changed)
    return () => window.removeEventListener('hashchange', changed)
  }, [])
  return hash.slice(1).split('/').filter(Boolean)
}

function WalletBar() {
  const { t, wallets, wallet, connect, config, setLang, lang, wrongNetwork, doSwitch, walletError } = useApp()
  return (
    <div className="wallet" aria-live="polite">
      <button type="button" className="link" onClick={() => setLang(lang === 'en' ? 'zh' : 'en')} lang={lang === 'en' ? 'zh' : 'en'}>
        {t('lang.switch')}
      </button>
      {!config?.deployment && config && <span className="note">{t('wallet.noDeployment')}</span>}
      {wallet.account ? (
        <span className="account" data-testid="account" title={wallet.account}>
          {t('wallet.connected', { account: short(wallet.account) })}
        </span>
      ) : wallets.length ? (
        wallets.map((w) => (
          <button type="button" key={w.info.uuid} onClick={() => connect(w)} data-testid="connect">
            {w.info.icon ? <img src={w.info.icon} alt="" width="16" height="16" /> : null}
            {wallets.length > 1 ? t('wallet.connectWith', { name: w.info.name }) : t('wallet.connect')}
          </button>
        ))
      ) : (
        <span className="note" data-testid="no-wallet">{t('wallet.none')}</span>
      )}
      {wrongNetwork && (
        <div className="warn" role="alert" data-testid="wrong-network">
          {t('wallet.wrongNetwork', { have: wallet.chainId, want: config.chain.id, name: config.chain.name })}{' '}
          <button type="button" onClick={doSwitch} data-testid="switch-network">
            {t('wallet.switch')}
          </button>
        </div>
      )}
      {walletError && <div className="error" role="alert">{walletError}</div>}
    </div>
  )
}

function App() {
  const [lang, setLangState] = useState(initialLanguage)
  const t = useMemo(() => translator(lang), [lang])
  const [config, setConfig] = useState(null)
  const [assets, setAssets] = useState({})
  const [wallets, setWallets] = useState([])
  const [wallet, setWallet] = useState({ provider: null, account: null, chainId: null })
  const [walletError, setWalletError] = useState('')
  const route = useHashRoute()

  const setLang = (value) => {
    localStorage.setItem('vm.lang', value)
    document.documentElement.lang = value === 'zh' ? 'zh-CN' : 'en'
    setLangState(value)
  }
  useEffect(() => {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en'
  }, [lang])
  useEffect(() => {
    api('/app-config.json').then(setConfig, (e) => setWalletError(String(e.message)))
    api('/assets').then(
      (list) => setAssets(Object.fromEntries(list.map((a) => [a.address.toLowerCase(), a]))),
      () => {},
    )
    return discoverWallets(setWallets)
  }, [])

  const connect = useCallback(
    async ({ provider }) => {
      setWalletError('')
      try {
        const [account] = await provider.request({ method: 'eth_requestAccounts' })
        const chainId = parseInt(await provider.request({ method: 'eth_chainId' }), 16)
        setWallet({ provider, account, chainId })
        provider.on?.('accountsChanged', (accounts) => setWallet((w) => ({ ...w, account: accounts[0] || null })))
        provider.on?.('chainChanged', (id) => setWallet((w) => ({ ...w, chainId: parseInt(id, 16) })))
      } catch (error) {
        setWalletError(explainError(error, t, lang))
      }
    },
    [t, lang],
  )
  const wrongNetwork = Boolean(config?.deployment && wallet.account && wallet.chainId !== config.chain.id)
  const doSwitch = async () => {
    setWalletError('')
    try {
      await switchChain(wallet.provider, config)
      const chainId = parseInt(await wallet.provider.request({ method: 'eth_chainId' }), 16)
      setWallet((w) => ({ ...w, chainId }))
    } catch (error) {
      setWalletError(explainError(error, t, lang))
    }
  }
  const chainCtx = useMemo(() => {
    if (!config?.deployment) return null
    const ready = wallet.account && !wrongNetwork
    return { config, ...clients(config, ready ? wallet.provider : null, ready ? wallet.account : undefined) }
  }, [config, wallet.provider, wallet.account, wrongNetwork])

  const value = {
    t,
    lang,
    setLang,
    config,
    assets,
    wallets,
    wallet,
    connect,
    wrongNetwork,
    doSwitch,
    walletError,
    chain: chainCtx,
    canSend: Boolean(chainCtx?.wallet),
  }
  const [page, arg] = route
  let body
  if (page === 'voice' && arg) body = <Voice id={arg} />
  else if (page === 'licences') body = <Licences />
  else if (page === 'creator') body = <Creator />
  else if (page === 'operator') body = <Operator address={arg} />
  else body = <Browse />
  const nav = [
    ['#/', 'nav.browse', !page || page === 'voice'],
    ['#/licences', 'nav.licences', page === 'licences'],
    ['#/creator', 'nav.creator', page === 'creator'],
    ['#/operator', 'nav.operator', page === 'operator'],
  ]
  return (
    <Ctx.Provider value={value}>
      <header>
        <a className="brand" href="#/">
          voicemarket
        </a>
        <nav aria-label="main">
          {nav.map(([href, key, current]) => (
            <a key={href} href={href} aria-current={current ? 'page' : undefined}>
              {t(key)}
            </a>
          ))}
        </nav>
        <WalletBar />
      </header>
      <main id="main">{body}</main>
    </Ctx.Provider>
  )
}

createRoot(document.getElementById('root')).render(
  <StrictMode>
    <App />
  </StrictMode>,
)
