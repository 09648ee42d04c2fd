import { useEffect, useState } from 'react'
import { formatUnits } from 'viem'
import { ETH, formatAmount, read, short } from '../chain.js'
import { Loading, TxState, useApi, useEvents, useTx } from '../components.jsx'
import { fmtDate, useApp } from '../context.js'
import { TIERS } from './Browse.jsx'
import { Withdraw } from './Licences.jsx'
import { busy } from './Voice.jsx'

// Revenue per day as bars, drawn by hand (no chart library): one series per asset.
export function RevenueChart({ days, asset }) {
  const { assets, lang } = useApp()
  const info = assets[asset.toLowerCase()] || { decimals: 18, symbol: short(asset) }
  const points = days.filter((d) => d.asset.toLowerCase() === asset.toLowerCase())
  if (!points.length) return null
  const values = points.map((d) => Number(formatUnits(BigInt(d.amount), info.decimals)))
  const max = Math.max(...values) || 1
  const width = 320
  const height = 120
  const bar = Math.min(40, (width - 40) / values.length)
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height + 30}`} role="img" aria-label={`${info.symbol} per day`} data-testid="revenue-chart">
        <line x1="30" y1={height} x2={width} y2={height} stroke="currentColor" strokeWidth="1" />
        <text x="0" y="12" fontSize="10" fill="currentColor">{max.toPrecision(3)}</text>
        <text x="0" y={height} fontSize="10" fill="currentColor">0</text>
        {values.map((v, i) => {
          const h = (v / max) * (height - 10)
          const x = 34 + i * bar
          return (
            <g key={points[i].day}>
              <rect x={x} y={height - h} width={bar - 4} height={h} fill="#2563eb">
                <title>{`${points[i].day}: ${v} ${info.symbol}`}</title>
              </rect>
              <text x={x} y={height + 14} fontSize="9" fill="currentColor">
                {new Date(points[i].day).toLocaleDateString(lang === 'zh' ? 'zh-CN' : 'en-GB', { month: 'numeric', day: 'numeric' })}
              </text>
            </g>
          )
        })}
      </svg>
      <figcaption>{info.symbol}</figcaption>
    </figure>
  )
}

function Collect({ model, asset, onDone }) {
  const { t, assets, chain } = useApp()
  const [tx, run] = useTx()
  const go = async () => {
    const steps = []
    for (const role of ['licenses', 'router']) {
      const [share] = await read(chain, role, 'potOf', [BigInt(model), asset])
      if (share > 0n) steps.push({ role, functionName: 'distribute', args: [BigInt(model), asset] })
    }
    if (await run(steps)) onDone()
  }
  const symbol = (assets[asset.toLowerCase()] || { symbol: short(asset) }).symbol
  return (
    <span>
      <button type="button" onClick={go} disabled={busy(tx)} data-testid="collect">
        {t('creator.collect', { asset: symbol })}
      </button>
      <TxState state={tx} />
    </span>
  )
}

function Retire({ model }) {
  const { t, lang, chain } = useApp()
  const [notice, setNotice] = useState(null)
  const [tx, run] = useTx()
  useEffect(() => {
    read(chain, 'registry', 'retirementNotice', []).then((n) => setNotice(Number(n)))
  }, [])
  if (model.status !== 'active' || notice === null) return null
  const ends = Math.floor(Date.now() / 1000) + notice
  return (
    <div className="retire">
      <p className="note" data-testid="retire-notice">{t('creator.retireNotice', { date: fmtDate(ends, lang) })}</p>
      <button type="button" onClick={() => run({ role: 'registry', functionName: 'retire', args: [BigInt(model.model_id)] })} disabled={busy(tx)}>
        {t('creator.retire')}
      </button>
      <TxState state={tx} />
    </div>
  )
}

function CreatedModel({ item }) {
  const { t } = useApp()
  const [model] = useApi(`/models/${item.model_id}`)
  const sold = Object.fromEntries(TIERS.map((tier) => [tier, 0]))
  for (const o of model?.offers || []) sold[o.tier] += o.sold
  return (
    <li className="card" data-testid="created-model">
      <h3>
        <a href={`#/voice/${item.model_id}`}>{item.name || short(item.model_id)}</a>
      </h3>
      <p>
        {t('card.uses', { uses: item.uses })} · {t('voice.licences')}:{' '}
        {TIERS.map((tier) => `${t(`tier.${tier}`)} ${sold[tier]}`).join(' · ')}
      </p>
      {model && <Retire model={model} />}
    </li>
  )
}

export function Creator() {
  const { t, chain, wallet, assets } = useApp()
  const account = chain?.wallet ? wallet.account : null
  const [models, modelsError] = useApi(account ? `/models?creator=${account}&limit=100` : null)
  const [earnings, , reload] = useApi(account ? `/creators/${account}/earnings` : null)
  const [live, setLive] = useState(0)
  const [round, setRound] = useState(0) // a collect or withdraw changed the balances: read them again
  const changed = () => {
    setRound((n) => n + 1)
    reload()
    setTimeout(reload, 1500) // the index follows the chain a moment later
  }
  useEvents(account ? `account=${account}` : null, () => {
    setLive((n) => n + 1)
    reload()
  })
  if (!account) return <p className="note">{t('creator.connect')}</p>
  const assetList = [ETH, ...Object.keys(assets).filter((a) => BigInt(a) !== 0n)]
  const pending = (earnings?.created_models || []).filter((m) => BigInt(m.pending) > 0n)
  return (
    <section>
      <h1>
        {t('creator.title')} {live ? <small className="ok">● {t('creator.live')}</small> : null}
      </h1>
      <h2>{t('creator.withdrawable')}</h2>
      <ul className="plain" key={round}>
        {assetList.map((asset) => (
          <li key={asset} data-testid="withdrawable" data-asset={asset}>
            <Withdraw role="licenses" asset={asset} onDone={reload} /> <Withdraw role="router" asset={asset} onDone={reload} />
          </li>
        ))}
      </ul>
      {pending.length ? (
        <>
          <h2>{t('creator.pending')}</h2>
          <ul className="plain">
            {pending.map((m) => (
              <li key={m.model_id + m.asset} data-testid="pending">
                {short(m.model_id)}: {formatAmount(m.pending, m.asset, assets)} <Collect model={m.model_id} asset={m.asset} onDone={changed} />
              </li>
            ))}
          </ul>
        </>
      ) : null}
      <h2>{t('creator.revenue')}</h2>
      {earnings ? (
        <div className="charts">
          {[...new Set(earnings.received_by_day.map((d) => d.asset))].map((asset) => (
            <RevenueChart key={asset} days={earnings.received_by_day} asset={asset} />
          ))}
          <table>
            <caption>{t('creator.received')}</caption>
            <tbody>
              {earnings.received.map((r, i) => (
                <tr key={i}>
                  <td>{short(r.model_id)}</td>
                  <td>{r.party}</td>
                  <td>{formatAmount(r.amount, r.asset, assets)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : (
        <Loading />
      )}
      <h2>{t('creator.usesByTier')}</h2>
      {models ? (
        models.items.length ? (
          <ul className="cards">
            {models.items.map((item) => (
              <CreatedModel key={item.model_id} item={item} />
            ))}
          </ul>
        ) : (
          <p className="note">{t('creator.none')}</p>
        )
      ) : (
        <Loading error={modelsError} />
      )}
    </section>
  )
}
